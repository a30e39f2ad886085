"""Where and how computations run: device choice, seeding, CPU threads."""
from __future__ import annotations

import functools
import os
import random
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_precision = "fp32"
EVENTS_ENV = "SHIFTLAB_EVENTS"
CORES_ENV = "SHIFTLAB_CORES"
LARGE_PAGES_ENV = "THP_MEM_ALLOC_ENABLE"   # read by torch's CPU allocator once per process


@contextmanager
def large_pages_in_new_processes():
    """Within the block, processes started (training workers, notebook kernels) allocate blocks of 2 MB or more in
    transparent huge pages (Linux, THP mode madvise or always): THP_MEM_ALLOC_ENABLE=1 in their environment, unless
    the user set it; torch's CPU allocator reads it once, at a process's first allocation. The large feature maps a
    training step allocates afresh are then mapped 2 MB at a time instead of 4 kB. The environment is restored after
    the block."""
    before = os.environ.get(LARGE_PAGES_ENV)
    os.environ.setdefault(LARGE_PAGES_ENV, "1")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LARGE_PAGES_ENV, None)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda when present, else cpu; 'cuda' without a GPU is an error."""
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is invalid; valid: {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for (the paper profile's default) but no CUDA GPU is visible: "
                           "run on a machine with one, or pass -p device=cpu "
                           "(make book PROFILE=paper PARAMS=device=cpu)")
    return torch.device(device)


@functools.cache
def cpu_description() -> str | None:
    """This CPU's 'model name' and 'flags' lines of /proc/cpuinfo, each distinct one once, sorted (None where there is
    no /proc/cpuinfo)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))


def training_precision(wanted: str, device: torch.device | str = "cpu") -> str:
    """The precision a model asking for `wanted` trains in on device: as asked on a GPU, float32 on every CPU, so
    that CPUs with and without bfloat16 units train the same function and reach the same verdicts."""
    return wanted if torch.device(device).type != "cpu" else "fp32"


def set_precision(name: str) -> None:
    """The precision of evaluation forward passes (training takes its own, TrainConfig.precision): fp32, or bf16 /
    fp16 autocast."""
    global _precision
    if name not in PRECISIONS:
        raise ValueError(f"precision={name!r} is invalid; valid: {', '.join(PRECISIONS)}")
    _precision = name


def precision() -> str:
    """The evaluation precision in effect (``set_precision``)."""
    return _precision


def autocast(device: torch.device, name: str | None = None):
    """Autocast on device to precision `name` (default: the evaluation precision); a no-op for fp32."""
    dtype = PRECISIONS[name or _precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def in_fp32(fn):
    """Decorate a forward method fn(self, x) to run in float32 with autocast off: under autocast, fn(self, x.float())
    with autocast disabled on x's device; otherwise fn(self, x) unchanged. Used by the fixed blurs: exact in float32,
    and on a CPU oneDNN runs their depthwise convolution slower in bfloat16 than in float32."""
    @functools.wraps(fn)
    def wrapper(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return fn(self, x)
        with torch.autocast(x.device.type, enabled=False):
            return fn(self, x.float())
    return wrapper


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators with seed and make torch pick deterministic kernels.

    torch.set_deterministic_debug_mode("warn") is torch.use_deterministic_algorithms(True, warn_only=True) (an op
    without a deterministic kernel warns instead of raising) without also setting the compiler's (inductor's) flag,
    which nothing here uses. torch.utils.deterministic.fill_uninitialized_memory = False: new tensors are not filled
    with NaN (a debugging aid for reads of uninitialised memory; no op here reads it, so the results are the same).
    CUBLAS_WORKSPACE_CONFIG=:4096:8 (unless set) makes cuBLAS deterministic on a GPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_deterministic_debug_mode("warn")
    torch.utils.deterministic.fill_uninitialized_memory = False


def set_threads(n: int | None = None) -> None:
    """Use n CPU threads for torch (default: the cores this process may use, ``cpu_budget``)."""
    torch.set_num_threads(n or cpu_budget())


def cpu_count() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def cpu_budget() -> int:
    """The cores this process should use: $SHIFTLAB_CORES when the driver runs notebooks side by side
    (its share of the machine), else every core it may run on."""
    share = os.environ.get(CORES_ENV, "")
    if not share:
        return cpu_count()
    if not share.isdigit() or int(share) < 1:
        raise ValueError(f"${CORES_ENV}={share!r} is invalid; valid: a whole number of cores >= 1")
    return min(int(share), cpu_count())


def report(event: str) -> None:
    """Append one line to the run's event log ($SHIFTLAB_EVENTS, set by scripts/run_notebooks.py), which the
    driver shows live; a no-op outside a driver run. One short write per line, so workers never interleave."""
    path = os.environ.get(EVENTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(event.replace("\n", " ") + "\n")


def _is_project(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir()


def project_root() -> Path:
    """The checkout this package belongs to (editable install), else the nearest one above the
    working directory, else the working directory: relative paths in notebooks resolve from here."""
    here = Path(__file__).resolve().parents[2]
    if _is_project(here):
        return here
    cwd = Path.cwd().resolve()
    return next((p for p in (cwd, *cwd.parents) if _is_project(p)), cwd)
