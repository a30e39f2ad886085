"""Faults a user meets: a typo, no GPU, no network, a corrupt file, a killed run. Each gives one clear
message or recovers, and the same profile and seed give the same results."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest
import torch

from shiftlab import data, results, runtime, zoo

ROOT = Path(__file__).resolve().parent.parent
DRIVER = [sys.executable, str(ROOT / "scripts" / "run_notebooks.py")]


def _driver(*args, **kwargs):
    return subprocess.run([*DRIVER, *args], capture_output=True, text=True, cwd=ROOT, **kwargs)


@pytest.mark.parametrize("override, message", [
    ("epochs=-1", "parameter epochs=-1 is invalid; valid: an integer >= 1"),
    ("filter_sizes=[1, 9]",
     "parameter filter_sizes=[1, 9] is invalid; valid: a non-empty list of distinct filter sizes in 1..7"),
    ("dataset=cifar100", "parameter dataset='cifar100' is invalid; valid: 'fashion_mnist', 'cifar10'"),
    ("n_evl=3", "unknown parameter 'n_evl'; valid names:"),
    ("device=tpu", "parameter device='tpu' is invalid; valid: 'auto', 'cpu', 'cuda'"),
    ("n_imagenet=0", "parameter n_imagenet=0 is invalid; valid: an integer >= 1"),
])
def test_driver_refuses_bad_parameters_in_one_line(refused, override, message):
    code, err = refused("--profile", "smoke", "-p", override)
    assert code == 2
    assert message in err and err.count("\n") == 1, err


def test_an_override_no_notebook_of_the_run_has_is_refused_in_one_line(refused):
    code, err = refused("--profile", "smoke", "--only", "05_blurpool", "-p", "imagenet_val=/data/val")
    assert code == 2
    assert "no notebook of this run has the parameter(s) ['imagenet_val']" in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_no_gpu_is_one_clear_message():
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible: .* pass -p device=cpu") as err:
        runtime.resolve_device("cuda")
    assert "\n" not in str(err.value)
    assert runtime.resolve_device("cpu").type == "cpu" and runtime.resolve_device("auto").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_failed_notebook_names_cell_and_error_and_keeps_only_the_partial(tmp_path):
    proc = _driver("--profile", "smoke", "--only", "05_blurpool", "-p", "device=cuda",
                   "--out", str(tmp_path / "executed"), "--root", str(tmp_path))
    assert proc.returncode == 1
    assert "05_blurpool.ipynb failed in cell" in proc.stderr and "no CUDA GPU is visible" in proc.stderr
    assert (tmp_path / "executed" / "05_blurpool.partial.ipynb").is_file()
    assert not (tmp_path / "executed" / "05_blurpool.ipynb").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_failed_notebook_in_a_parallel_run_is_named_and_stops_the_run(tmp_path):
    proc = _driver("--profile", "smoke", "--only", "05_blurpool", "04_scale", "-p", "device=cuda", "--jobs", "2",
                   "--out", str(tmp_path / "executed"), "--root", str(tmp_path))
    assert proc.returncode == 1
    assert "ipynb failed in cell" in proc.stderr and "no CUDA GPU is visible" in proc.stderr
    assert not [n for n in ("04_scale", "05_blurpool") if (tmp_path / "executed" / f"{n}.ipynb").exists()], \
        "a failed run leaves no chapter page"


def test_jobs_must_be_positive(refused):
    code, err = refused("--profile", "smoke", "--jobs", "0")
    assert code == 2 and "--jobs 0 is invalid; valid: a whole number >= 1" in err


def test_no_network_and_no_local_copy_names_both_ways(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(data.DatasetError) as err:
        data.prepare_fashion_mnist(tmp_path / "root", download=True)
    assert "apt-get install dataset-fashion-mnist" in str(err.value) and "network access" in str(err.value)


def test_corrupt_dataset_file_is_an_error(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FASHION_MNIST_FILES:
        (raw / name).write_bytes((data.data_root() / "FashionMNIST" / "raw" / name).read_bytes())
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[: 100_000])
    with pytest.raises(data.DatasetError, match="delete that folder and run again"):
        data.load_fashion_mnist("test", tmp_path)


RERUN = ["00_background", "04_scale", "05_blurpool"]   # 32x32 and canvas training, evaluation, no training


def _results(root: Path) -> dict:
    """The RERUN notebooks' results JSON under root/results/smoke without timings (which alone may differ)."""
    out = {}
    for path in sorted((root / "results" / "smoke").glob("*.json")):
        if path.stem not in RERUN:
            continue
        doc = results.load(path)
        out[path.name] = json.dumps({k: v for k, v in doc.items() if k not in ("timings", "sha256")}, sort_keys=True)
    return out


def test_killed_run_resumes_and_reproduces_the_results_exactly(smoke_run, tmp_path):
    """Kill a smoke run (two notebooks at a time) once its first model is cached; rerun; the cached models are
    reused, and every results JSON equals the one of an independent run (same profile and seed, with its own
    model cache) but for its timings."""
    cache, out = tmp_path / "results" / "cache", tmp_path / "executed"
    args = [*DRIVER, "--profile", "smoke", "--only", *RERUN, "--out", str(out), "--root", str(tmp_path), "--jobs", "2"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(cache.glob("*.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {p.name for p in out.glob("*.ipynb") if not p.name.endswith(".partial.ipynb")}
    notebooks = {f"{name}.ipynb" for name in RERUN}
    assert finished_before < notebooks, "a killed run must not leave every chapter as if complete"
    models = {p: p.stat().st_mtime_ns for p in cache.glob("*.pt")}
    assert models, "the first model was cached before the kill"

    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in models.items()), "a finished model was retrained"
    assert {p.name for p in out.glob("*.ipynb")} == notebooks
    assert _results(tmp_path) == _results(smoke_run) and len(_results(tmp_path)) == len(RERUN)


def test_cached_model_from_an_older_library_version_is_not_reused(tmp_path, monkeypatch):
    _, first = zoo.get("baseline", n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(zoo, "__version__", "999.0")
    _, second = zoo.get("baseline", n_train=256, epochs=1, cache_dir=tmp_path, progress=False)
    assert not second["cached"] and second["path"] != first["path"]


def test_parallel_notebooks_get_a_gpu_each(driver, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert driver.visible_gpus("auto") == ["2", "3"] and driver.visible_gpus("0,1") == ["0", "1"]
    assert driver.visible_gpus("none") == []
    assert [driver.gpu_for_slot(s, ["2", "3"]) for s in range(3)] == ["2", "3", "2"]
    assert driver.gpu_for_slot(0, []) is None
    with pytest.raises(driver.ParameterError, match="--gpus 'x' is invalid; valid: 'auto', 'none', or ids"):
        driver.visible_gpus("x")


def test_a_worker_given_a_gpu_starts_its_kernel_with_only_that_one_visible(driver, tmp_path, monkeypatch):
    """run_in_worker sets CUDA_VISIBLE_DEVICES before the kernel starts, so the notebook's cuda:0 is its GPU."""
    seen = {}

    def run(*args, **kwargs):
        seen.setdefault("gpu", os.environ.get("CUDA_VISIBLE_DEVICES"))
        return 0.0, False

    monkeypatch.setattr(driver, "run", run)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SHIFTLAB_CORES", raising=False)        # both restored after the test
    driver.run_in_worker(ROOT / "notebooks" / "05_blurpool.ipynb", tmp_path / "x.ipynb", {}, tmp_path / "e.log", "x",
                         1, "1")
    assert seen["gpu"] == "1"


def test_notebooks_with_no_time_here_are_ordered_by_the_reference_machines(driver, tmp_path):
    """A fresh clone has no run times yet: the longest chapters by the committed reference times start first, and
    --record-reference writes the last run's times (and their table) as the new reference."""
    here = {"b": {"cold": 5.0}}
    reference = {"a": {"cold": 100.0, "warm": 3.0}, "b": {"cold": 1.0}, "c": {"warm": 20.0}}
    assert [driver._expected_time(here, reference, n) for n in "abcd"] == [100.0, 5.0, 20.0, 0.0]
    times_path = tmp_path / "results" / "book" / "run_times.json"
    assert driver.record_reference({}, times_path, tmp_path / "ref.json") == 2
    driver.record_reference(reference, times_path, tmp_path / "ref.json")
    assert json.loads((tmp_path / "ref.json").read_text()) == reference
    table = (tmp_path / "ref.md").read_text()
    assert "| a | 1:40 | 0:03 |" in table and "| c | as warm | 0:20 |" in table and "**2:01** | **0:23**" in table


def test_a_notebook_is_cold_when_it_trains_or_evaluates_and_warm_when_it_only_reads_caches(driver, tmp_path,
                                                                                          monkeypatch):
    """Chapter 8 trains no model of its own but computes its evaluations on a first run: that run is cold."""
    from shiftlab import evalcache, runtime

    events = tmp_path / "events.log"
    events.write_text("")
    monkeypatch.setenv(runtime.EVENTS_ENV, str(events))
    info = {"key": "0123456789abcdef", "weights": "a" * 64}
    evalcache.cached(tmp_path, info, "acc", {}, lambda: 1.0)
    first = events.read_text()
    events.write_text("")
    evalcache.cached(tmp_path, info, "acc", {}, lambda: 1.0)
    second = events.read_text()
    assert driver.ran_cold(first) and not driver.ran_cold(second)
    assert driver.ran_cold("use baseline seed 0\ntrain baseline seed 0: 4 epochs x 60000 images\n")
    assert not driver.ran_cold("use baseline seed 0\n")


def test_the_kernel_is_not_interrupted_while_it_is_shut_down(driver):
    """jupyter_client interrupts a kernel before shutting it down, which makes a finished notebook's kernel log a
    KeyboardInterrupt error on the run's output; the driver's kernel manager interrupts only a kernel in use."""
    import asyncio
    manager = driver.IPCKernelManager(kernel_name=driver.KERNEL)
    with pytest.raises(RuntimeError, match="No kernel is running"):   # in use: the interrupt goes through
        asyncio.run(manager._async_interrupt_kernel())
    manager.shutting_down = True
    assert asyncio.run(manager._async_interrupt_kernel()) is None
