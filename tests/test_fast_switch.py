"""The book's verdicts do not depend on the accelerator: chapters rerun with SHIFTLAB_FAST=off on the same trained
models (their evaluations recomputed by the plain layers) decide every claim as the accelerated run did."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shiftlab import findings

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ["09_aps"]   # MaxPool, MaxBlurPool and APS networks, trained and untrained


@pytest.mark.slow
def test_verdicts_are_the_same_with_the_accelerator_off(smoke_run, tmp_path):
    cache = tmp_path / "results" / "cache"
    cache.mkdir(parents=True)
    for model in (smoke_run / "results" / "cache").glob("*.pt"):   # the trained models, not their evaluations
        shutil.copy(model, cache / model.name)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke", "--only",
                           *CHAPTERS, "--out", str(tmp_path / "executed"), "--root", str(tmp_path), "--jobs", "2"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "SHIFTLAB_FAST": "off"})
    assert proc.returncode == 0, proc.stderr
    assert "train " not in proc.stdout, "the plain run trained a model: it must reuse the accelerated run's"

    def verdicts(root: Path) -> dict[str, tuple[str, float]]:
        return {f.key: (f.verdict, f.effect) for chapter, f in findings.load_all(root / "results" / "smoke")
                if chapter in CHAPTERS}

    plain, accelerated = verdicts(tmp_path), verdicts(smoke_run)
    assert plain.keys() == accelerated.keys() and plain
    for key, (verdict, effect) in accelerated.items():
        assert plain[key][0] == verdict, f"{key}: {verdict} accelerated, {plain[key][0]} plain"
        assert plain[key][1] == pytest.approx(effect, abs=0.02), key
