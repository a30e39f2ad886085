"""Compiled CPU kernels, built on first use by torch's C++ extension loader (needs a C++ compiler and ninja),
with torch's own ops as the fallback: the same values, slower.

dense_max is Max_{2,1}, the 2x2 max at stride 1 inside MaxBlurPool and APS: torch's max_pool2d(x, 2, 1) stores
an int64 index per output and scatters its gradient; csrc/dense_max.cpp keeps one byte per output and gathers.
Values and float32 gradients equal max_pool2d's bit for bit (tests/test_kernels.py). $SHIFTLAB_KERNELS=off uses
torch's ops only.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

KERNELS_ENV = "SHIFTLAB_KERNELS"
SOURCE = Path(__file__).with_name("csrc") / "dense_max.cpp"
_torch_only = False


def _cpu_signature() -> str:
    """The CPU's model and feature flags (the kernels are compiled for this CPU with -march=native)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() or platform.machine()


def extension_name() -> str:
    """The extension's name: unique to its source, torch's version and this CPU, so no build is reused elsewhere."""
    digest = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode() + _cpu_signature().encode())
    return f"shiftlab_kernels_{digest.hexdigest()[:12]}"


def _wanted() -> bool:
    value = os.environ.get(KERNELS_ENV, "on")
    if value not in ("on", "off"):
        raise ValueError(f"${KERNELS_ENV}={value!r} is invalid; valid: on, off")
    return value == "on"


@functools.cache
def compiled() -> bool:
    """Whether the compiled kernels are in use: built (or loaded from torch's extension cache) now, or False, with a
    warning naming what is missing, when they cannot be built."""
    if not _wanted():
        return False
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)   # "No CUDA runtime is found": irrelevant here
    try:
        from torch.utils.cpp_extension import load
        load(name=extension_name(), sources=[str(SOURCE)], extra_cflags=["-O3", "-march=native"],
             is_python_module=False, verbose=False)
        return True
    except Exception as err:   # no compiler, no ninja, a failed build: fall back, loudly
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        warnings.warn(f"shiftlab's CPU kernels could not be built ({type(err).__name__}: {first}); using torch's "
                      f"max_pool2d instead (same values, slower). They need a C++ compiler and the ninja package; "
                      f"set ${KERNELS_ENV}=off to skip them.", stacklevel=2)
        return False


class _DenseMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y, winners = torch.ops.shiftlab_kernels.dense_max_forward(x)
        ctx.save_for_backward(winners)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (winners,) = ctx.saved_tensors
        return torch.ops.shiftlab_kernels.dense_max_backward(grad, winners)


@contextmanager
def torch_ops_only():
    """Within this block dense_max runs torch's max_pool2d (for side-by-side measurements)."""
    global _torch_only
    before, _torch_only = _torch_only, True
    try:
        yield
    finally:
        _torch_only = before


def dense_max(x: torch.Tensor) -> torch.Tensor:
    """Max_{2,1}: y[..., i, j] = max x[..., i:i+2, j:j+2] of a map already padded by one pixel right and bottom,
    (N, C, H+1, W+1) -> (N, C, H, W); equal to F.max_pool2d(x, 2, 1)."""
    if x.device.type == "cpu" and x.dim() == 4 and not _torch_only and compiled():
        return _DenseMax.apply(x)
    return F.max_pool2d(x, kernel_size=2, stride=1)
