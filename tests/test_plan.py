"""The plan: every model a profile will ask for, listed before anything trains, exactly as the run then uses them."""
from pathlib import Path

from shiftlab import weights

ROOT = Path(__file__).resolve().parent.parent


def test_plan_lists_exactly_the_models_the_smoke_run_used(smoke_run, smoke_plan):
    planned = smoke_plan
    used = weights.used_models(smoke_run / "results" / "smoke")
    assert {m["key"] for m in planned} == set(used)
    assert all(m["config"]["name"] == m["name"] and m["config"]["train"]["seed"] == m["seed"] for m in planned)
    assert not list((smoke_run / "results" / "smoke").glob("plan*")), "a plan writes nothing into the results"
