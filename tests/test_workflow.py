"""Users' CI: .github/workflows/book.yml passes actionlint and runs the README's test command."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
LINTER = ROOT / "scripts" / "actionlint.cjs"


def actionlint(path: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the workflow test needs Node.js: `make lint-tools` installs it "
                    "(or sudo apt-get install nodejs npm)")
    proc = subprocess.run([node, str(LINTER), str(path)], capture_output=True, text=True)
    if proc.returncode == 2:
        pytest.fail(proc.stderr.strip())
    return proc


def test_workflow_passes_actionlint():
    proc = actionlint(WORKFLOW)
    assert proc.returncode == 0, proc.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ${{ github.no_such_field }}", 1))
    proc = actionlint(broken)
    assert proc.returncode == 1 and "no_such_field" in proc.stdout


def readme_test_command() -> str:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return next(line.split("#")[0].strip() for line in block.splitlines() if line.startswith("make test"))


def test_workflow_tests_every_push_with_the_readme_command_and_publishes_main():
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf[True]                       # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "pull_request" in triggers
    test_steps = [s.get("run", "") for s in wf["jobs"]["test"]["steps"]]
    assert readme_test_command() in test_steps
    assert "refs/heads/main" in wf["jobs"]["book"]["if"]
    book_steps = wf["jobs"]["book"]["steps"]
    assert any(s.get("run") == "make book" for s in book_steps)
    assert any(s.get("with", {}).get("path") == "results/cache" for s in book_steps)
    assert any(s.get("run") == "make weights" for s in book_steps)
    assert any(s.get("with", {}).get("path") == "results/shiftlab-*-weights.tar" for s in book_steps)
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in wf["jobs"]["publish"]["steps"])


MATRIX = ROOT / ".github" / "workflows" / "train-matrix.yml"


def test_matrix_workflow_passes_actionlint():
    proc = actionlint(MATRIX)
    assert proc.returncode == 0, proc.stdout


def test_matrix_workflow_plans_trains_shards_and_builds_warm():
    """Dispatched by hand: the plan, one runner per share (train_zoo.py --shard), their cache files merged into
    results/cache, then make book and the site published."""
    wf = yaml.safe_load(MATRIX.read_text())
    assert set(wf[True]) == {"workflow_dispatch"}
    jobs = wf["jobs"]
    assert any("--plan --json" in s.get("run", "") for s in jobs["plan"]["steps"])
    assert jobs["train"]["needs"] == "plan" and "fromJSON(needs.plan.outputs.shards)" in \
        jobs["train"]["strategy"]["matrix"]["shard"]
    train = " ".join(s.get("run", "") for s in jobs["train"]["steps"])
    assert "scripts/train_zoo.py" in train and '--shard "$SHARD"' in train and "--executor local" in train
    downloads = [s for s in jobs["book"]["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    assert downloads and downloads[0]["with"]["path"] == "results/cache" and downloads[0]["with"]["merge-multiple"]
    assert any("make book" in s.get("run", "") for s in jobs["book"]["steps"])
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in jobs["publish"]["steps"])
