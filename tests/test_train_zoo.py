"""scripts/train_zoo.py: chapter 0's part of the smoke plan trained by submitit's local executor in two processes
gives the models the notebook trains itself (same cache keys, same weights), after which the notebook trains
nothing and finds what the smoke run found; rerunning trains nothing. The SLURM path without a cluster: a stand-in
sbatch records the submission, one array task per missing model, at most K at once, each running submitit's task
command on exactly one planned model."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_script

pytest.importorskip("submitit", reason="pip install -e '.[cluster]'")
NOTEBOOK = "00_background"


@pytest.fixture(scope="module")
def planned(tmp_path_factory, smoke_plan) -> tuple[Path, list[dict]]:
    """A scratch root and chapter 0's part of the smoke plan, as a plan file (trained into the root's own cache)."""
    root = tmp_path_factory.mktemp("train_zoo")
    models = [m for m in smoke_plan if NOTEBOOK in m["notebooks"]]
    (root / "plan.json").write_text(json.dumps(models))
    return root, models


def test_local_executor_trains_the_plan_and_the_chapter_then_trains_nothing(planned, smoke_run, capsys):
    root, models = planned
    train_zoo = load_script("train_zoo")
    args = ["--profile", "smoke", "--plan-file", str(root / "plan.json"), "--folder", str(root / "submitit"),
            "--cache-dir", str(root / "results" / "cache")]
    assert train_zoo.main([*args, "--executor", "local", "--workers", "2"]) == 0
    cache = root / "results" / "cache"
    assert sorted(p.name for p in cache.glob("*.pt")) == sorted(f"{m['name']}-{m['key']}.pt" for m in models)
    assert len(list((root / "submitit").glob("*_log.out"))) == 2              # two processes
    assert train_zoo.main([*args, "--executor", "local"]) == 0               # again: nothing left to train
    assert f"{len(models)} cached, 0 to train" in capsys.readouterr().out

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke", "--only",
                           NOTEBOOK, "--root", str(root), "--out", str(root / "executed"),
                           "--jobs", "2"],       # as the smoke run: one core per notebook, the same float sums
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    events = (root / "results" / "smoke" / f"events-{NOTEBOOK}.log").read_text()
    assert "train " not in events, events
    warm = json.loads((root / "results" / "smoke" / f"{NOTEBOOK}.json").read_text())
    sequential = json.loads((smoke_run / "results" / "smoke" / f"{NOTEBOOK}.json").read_text())
    assert warm["models"] == sequential["models"]            # the same cache keys and weights (SHA-256)
    assert warm["metrics"] == sequential["metrics"]


def test_slurm_submission_is_one_array_task_per_missing_model(planned, tmp_path, monkeypatch, capsys):
    from submitit.core.utils import DelayedSubmission

    root, models = planned
    bin_dir, record = tmp_path / "bin", tmp_path / "sbatch.sh"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\ncp "$1" "{record}"\necho "Submitted batch job 4242"\n')
    sbatch.chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")       # submitit looks for it before submitting
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    folder = tmp_path / "submitit"
    code = load_script("train_zoo").main([
        "--profile", "smoke", "--plan-file", str(root / "plan.json"), "--executor", "slurm",
        "--array-parallelism", "3", "--partition", "debug", "--gpus-per-task", "1", "--folder", str(folder),
        "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    script = record.read_text()
    n = len(models)
    assert f"#SBATCH --array=0-{n - 1}%3" in script
    assert "#SBATCH --partition=debug" in script and "#SBATCH --gpus-per-task=1" in script
    assert "-m submitit.core._submit" in script and "srun" in script
    tasks = [DelayedSubmission.load(p) for p in sorted(folder.glob("4242_*_submitted.pkl"))]
    assert len(tasks) == n
    assert all(t.function.__name__ == "train_models" and len(t.args[0]) == 1 for t in tasks)
    assert sorted(t.args[0][0]["name"] + str(t.args[0][0]["train"]["seed"]) for t in tasks) == \
        sorted(m["name"] + str(m["seed"]) for m in models)
    assert {t.args[1] for t in tasks} == {str(tmp_path / "cache")} and {t.args[2] for t in tasks} == {"cuda"}
    assert "submitted job array 4242" in capsys.readouterr().out

    # again while the array runs: nothing is submitted twice; once some tasks ended (unfinished), only those again
    train_zoo = load_script("train_zoo")
    keys = json.loads((folder / "in_flight.json").read_text())
    assert sorted(keys) == sorted(m["key"] for m in models) and set(keys.values()) == {f"4242_{k}" for k in range(n)}
    argv = ["--profile", "smoke", "--plan-file", str(root / "plan.json"), "--executor", "slurm", "--folder",
            str(folder), "--cache-dir", str(tmp_path / "cache")]
    record.unlink()
    monkeypatch.setattr(train_zoo, "job_active", lambda folder, job: True)
    assert train_zoo.main(argv) == 0 and not record.exists()
    assert f"{n} model(s) still in flight in job(s) 4242_0" in capsys.readouterr().out
    ended = {k for k, job in keys.items() if job in ("4242_0", "4242_1")}
    monkeypatch.setattr(train_zoo, "job_active", lambda folder, job: job not in ("4242_0", "4242_1"))
    assert train_zoo.main(argv) == 0
    assert f"#SBATCH --array=0-{len(ended) - 1}%" in record.read_text()
    assert f"{n - len(ended)} model(s) still in flight" in capsys.readouterr().out
    assert sorted(json.loads((folder / "in_flight.json").read_text())) == sorted(keys)


def test_bad_arguments_are_refused_in_one_line(planned, tmp_path, capsys, monkeypatch):
    root, _ = planned
    train_zoo = load_script("train_zoo")
    monkeypatch.setenv("PATH", "/nonexistent")               # no srun: not a SLURM machine
    with pytest.raises(SystemExit, match="no SLURM here"):
        train_zoo.main(["--plan-file", str(root / "plan.json"), "--executor", "slurm",
                        "--cache-dir", str(tmp_path / "cache")])
    monkeypatch.undo()
    assert train_zoo.main(["--plan-file", str(tmp_path / "none.json"), "--executor", "local"]) == 2
    assert "is not a plan" in capsys.readouterr().err
    assert train_zoo.main(["--plan-file", str(root / "plan.json"), "--executor", "slurm",
                           "--array-parallelism", "0"]) == 2
    assert "--array-parallelism 0 is invalid; valid: a whole number >= 1" in capsys.readouterr().err


def test_shards_deal_the_plan_into_disjoint_shares_of_nearly_equal_cost():
    from shiftlab import zoo

    train_zoo = load_script("train_zoo")
    configs = [zoo.full_config(name, 60000, 4, seed) for name in ("baseline", "canvas_vgg", "aps", "c8")
               for seed in (0, 1)]
    assert train_zoo.cost(configs[6]) > train_zoo.cost(configs[0])       # c8: 5x5 filters on half the images
    dealt = train_zoo.shares(configs, 3)
    keys = [zoo.cache_key(c) for share in dealt for c in share]
    assert sorted(keys) == sorted(zoo.cache_key(c) for c in configs) and len(set(keys)) == len(keys)
    loads = [sum(train_zoo.cost(c) for c in share) for share in dealt]
    assert max(loads) - min(loads) <= max(train_zoo.cost(c) for c in configs)
    assert train_zoo.shares(configs, 3) == dealt                       # the same on every runner
    assert len(train_zoo.shares(configs[:2], 5)) == 2


def test_a_gpu_plan_is_refused_on_the_cpu(planned, tmp_path, capsys):
    from shiftlab import zoo

    plan = [{"name": "baseline", "seed": 0, "config": zoo.full_config("baseline", 500, 1, 0, device="cuda")}]
    (tmp_path / "gpu.json").write_text(json.dumps(plan))
    code = load_script("train_zoo").main(["--plan-file", str(tmp_path / "gpu.json"), "--executor", "local",
                                          "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "trains baseline in bfloat16" in capsys.readouterr().err
