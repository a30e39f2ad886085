"""The plan: every model a profile will ask for, listed before anything trains, exactly as the run then uses them."""
import json
import subprocess
import sys
from pathlib import Path

from shiftlab import weights

ROOT = Path(__file__).resolve().parent.parent


def test_plan_lists_exactly_the_models_the_smoke_run_used(smoke_run):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke", "--plan",
                           "--json", "--jobs", "2", "--root", str(smoke_run)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    planned = json.loads(proc.stdout)
    used = weights.used_models(smoke_run / "results" / "smoke")
    assert {m["key"] for m in planned} == set(used)
    assert all(m["config"]["name"] == m["name"] and m["config"]["train"]["seed"] == m["seed"] for m in planned)
    assert not list((smoke_run / "results" / "smoke").glob("plan*")), "a plan writes nothing into the results"
