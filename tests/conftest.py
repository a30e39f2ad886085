"""Shared fixtures: the repository root, and one smoke-profile run of every notebook per session."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """Run every notebook with the smoke profile into a scratch book tree, two at a time (the
    reliability tests rerun some one at a time and compare); return that tree."""
    tree = tmp_path_factory.mktemp("smoke_book")
    for name in ("_config.yml", "_toc.yml", "CITATION.cff"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "book", tree / "book", ignore=shutil.ignore_patterns("executed"))
    shutil.copytree(ROOT / "notebooks", tree / "notebooks")      # the chapters' sources, offered for download
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke",
         "--out", str(tree / "book" / "executed"), "--root", str(tree), "--jobs", "2"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, f"smoke run failed:\n{proc.stdout}\n{proc.stderr}"
    return tree


@pytest.fixture(scope="session")
def smoke_plan(smoke_run) -> list[dict]:
    """The smoke profile's plan (run_notebooks.py --plan --json) for the smoke run's tree."""
    import json

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke", "--plan",
                           "--json", "--jobs", "2", "--root", str(smoke_run)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def load_script(name: str):
    """scripts/<name>.py as a module, so its functions run in-process (no interpreter start per call)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def driver():
    """scripts/run_notebooks.py as a module."""
    return load_script("run_notebooks")


@pytest.fixture
def refused(driver, capsys):
    """Call the driver's main(args) for a run it must refuse before starting a kernel: (exit code, stderr)."""
    def call(*args: str) -> tuple[int, str]:
        try:
            code = driver.main(list(args))
        except SystemExit as stop:           # e.g. an unknown notebook: the message is the exit's
            return (1 if isinstance(stop.code, str) else stop.code), capsys.readouterr().err + f"{stop.code}\n"
        return code, capsys.readouterr().err
    return call


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Unit tests use tiny tensors: one CPU thread is faster and leaves the other core alone."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
