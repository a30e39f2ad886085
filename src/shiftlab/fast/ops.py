"""The compiled CPU ops (csrc/), built on first use by torch's C++ extension loader (a C++ compiler and ninja; OpenMP
where the compiler has it), with torch's own ops as the fallback: the same functions within float rounding.

dense_max: Max_{2,1}, one byte per output for the backward instead of an int64 index. bn_relu: ReLU . BN
[. MaxPool_{2,2}] in one pass, the ReLU mask and pool winners recomputed in the backward. maxblur: Subsample_s .
Blur_m . Max_{2,1} one image at a time in cache-sized buffers. aps: adaptive polyphase sampling with the l2 norm in
two passes. stem_conv: the one-channel first convolution. What each saves is measured by `make bench`.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import runtime

FAST_ENV = "SHIFTLAB_FAST"
CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / name for name in ("dense_max.cpp", "bn_relu.cpp", "maxblur.cpp", "aps.cpp", "stem_conv.cpp")]
FUSED_DTYPES = (torch.float32, torch.bfloat16)   # the maps bn_relu, maxblur, aps and the stem compile for
_torch_only = False


def _cpu_signature() -> str:
    """The CPU's model and feature flags (the kernels are compiled for this CPU with -march=native)."""
    return runtime.cpu_description() or platform.processor() or platform.machine()


def extension_name(openmp: bool) -> str:
    """The extension's name: unique to its source, the torch installation it builds against (version and place),
    this CPU and the OpenMP flag, so no build is reused for other code, another environment or another machine, two
    environments do not rebuild each other's, and every checkout using one environment reuses one build
    (``source_dir``)."""
    sources = b"".join(path.read_bytes() for path in _source_files())
    install = f"{torch.__version__} {Path(torch.__file__).resolve().parent}".encode()
    digest = hashlib.sha256(sources + install + _cpu_signature().encode() + bytes([openmp]))
    return f"shiftlab_kernels_{digest.hexdigest()[:12]}"


def _source_files() -> list[Path]:
    return sorted(path for path in CSRC.iterdir() if path.suffix in (".cpp", ".h"))


def source_dir(name: str) -> Path:
    """A copy of the kernels' sources at a path fixed by their content, under $XDG_CACHE_HOME/shiftlab (default
    ~/.cache/shiftlab): torch's loader rebuilds an extension whose source paths changed, so a build from this copy is
    reused by every checkout of the same source, a fresh clone included."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shiftlab" / "kernel_sources"
    target = root / name
    if not target.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        for path in _source_files():
            shutil.copy2(path, staging / path.name)
        try:
            staging.rename(target)
        except OSError:          # another process put the same copy there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def enabled() -> bool:
    """The accelerator's switch: $SHIFTLAB_FAST, 'on' (default) or 'off'."""
    value = os.environ.get(FAST_ENV, "on")
    if value not in ("on", "off"):
        raise ValueError(f"${FAST_ENV}={value!r} is invalid; valid: on, off")
    return value == "on"


def _build(openmp: bool) -> None:
    from torch.utils.cpp_extension import load

    flags = ["-O3", "-march=native"] + (["-fopenmp"] if openmp else [])
    name = extension_name(openmp)
    sources = source_dir(name)
    load(name=name, sources=[str(sources / path.name) for path in SOURCES], extra_cflags=flags,
         extra_ldflags=["-fopenmp"] if openmp else [], is_python_module=False, verbose=False)


@functools.cache
def compiled() -> bool:
    """Whether the compiled ops are in use: built with OpenMP (at::parallel_for on torch's threads), else without it
    (single-threaded, with a warning), or False, with a warning naming what is missing, when they cannot be built or
    the accelerator is switched off."""
    if not enabled():
        return False
    # the loader's "No CUDA runtime is found" concerns CUDA builds, not these CPU ones
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        _build(openmp=True)
        return True
    except Exception:   # a compiler without OpenMP: build single-threaded
        pass
    try:
        _build(openmp=False)
        warnings.warn("shiftlab's CPU kernels were built without OpenMP (the compiler has no -fopenmp): they run on "
                      "one thread", stacklevel=2)
        return True
    except Exception as err:   # no compiler, no ninja, a failed build: fall back, loudly
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        warnings.warn(f"shiftlab's CPU kernels could not be built ({type(err).__name__}: {first}); using torch's "
                      f"ops instead (the same function, slower). They need a C++ compiler and the ninja package; "
                      f"set ${FAST_ENV}=off to skip them.", stacklevel=2)
        return False


def parallel_threads(n: int = 64) -> int:
    """How many distinct threads at::parallel_for used for n items of work in the compiled extension (1 when it was
    built without OpenMP or torch has one thread); 0 when the kernels are not built."""
    if not compiled():
        return 0
    return int(torch.ops.shiftlab_kernels.parallel_threads(n))


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


def _runs_compiled(x: torch.Tensor, dtypes: tuple[torch.dtype, ...] | None = None) -> bool:
    """Whether a kernel takes x: a CPU (N, C, H, W) map (of one of dtypes, if given), the kernels built and not
    switched off by torch_ops_only."""
    return (x.device.type == "cpu" and x.dim() == 4 and (dtypes is None or x.dtype in dtypes) and not _torch_only
            and compiled())


@contextmanager
def torch_ops_only():
    """Within this block dense_max, bn_relu, MaxBlurPool, APS and the stem convolution run torch's ops (to compare
    both side by side)."""
    global _torch_only
    before, _torch_only = _torch_only, True
    try:
        yield
    finally:
        _torch_only = before


def dense_max(x: torch.Tensor) -> torch.Tensor:
    """Max_{2,1}: y[..., i, j] = max x[..., i:i+2, j:j+2] of a map already padded by one pixel right and bottom,
    (N, C, H+1, W+1) -> (N, C, H, W); equal to F.max_pool2d(x, 2, 1)."""
    if _runs_compiled(x):
        return _DenseMax.apply(x)
    return F.max_pool2d(x, kernel_size=2, stride=1)


class _BNReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, pool: bool):
        y, mean, var = torch.ops.shiftlab_kernels.bn_relu_forward(x, weight, bias, eps, pool)
        ctx.save_for_backward(x, mean, var, weight, bias)
        ctx.eps, ctx.pool = eps, pool
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _mean, _var):
        x, mean, var, weight, bias = ctx.saved_tensors
        dx, dw, db = torch.ops.shiftlab_kernels.bn_relu_backward(grad, x, mean, var, weight, bias, ctx.eps, ctx.pool)
        return dx, dw, db, None, None


def _bn_relu_takes(x: torch.Tensor, bn: nn.BatchNorm2d, pool: bool, dtypes: tuple[torch.dtype, ...]) -> bool:
    """Whether a bn_relu kernel takes x and bn: an affine BatchNorm, a CPU map of one of dtypes (even height and width
    when pooled), the kernels built and not switched off."""
    return bn.affine and _runs_compiled(x, dtypes) and not (pool and (x.size(2) % 2 or x.size(3) % 2))


def _fusable(x: torch.Tensor, bn: nn.BatchNorm2d, pool: bool) -> bool:
    """Whether the compiled op computes bn_relu(x, bn, pool) in training: batch statistics on a float32 / bfloat16
    map."""
    return bn.training and bn.track_running_stats and _bn_relu_takes(x, bn, pool, FUSED_DTYPES)


def _update_running_stats(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """BatchNorm2d's running averages: r <- (1 - m) r + m * batch value, the variance unbiased (var * n / (n - 1))."""
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / bn.num_batches_tracked.item()
        bn.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        bn.running_var.mul_(1 - momentum).add_(var, alpha=momentum * count / (count - 1))


def _fusable_in_inference(x: torch.Tensor, bn: nn.BatchNorm2d, pool: bool) -> bool:
    """Whether the compiled op computes bn_relu(x, bn, pool) in evaluation: running statistics, no gradient recorded,
    a non-empty float32 map outside autocast."""
    return (x.numel() > 0 and not bn.training and bn.running_mean is not None and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled(x.device.type) and _bn_relu_takes(x, bn, pool, (torch.float32,)))


def bn_relu(x: torch.Tensor, bn: nn.BatchNorm2d, pool: bool = False) -> torch.Tensor:
    """ReLU(bn(x)), pooled: MaxPool_{2,2}(ReLU(bn(x))); on the CPU one compiled op (training: batch statistics;
    inference: running statistics), else torch's."""
    if _fusable_in_inference(x, bn, pool):
        return torch.ops.shiftlab_kernels.bn_relu_eval(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps,
                                                       pool)
    if not _fusable(x, bn, pool):
        y = F.relu(nn.BatchNorm2d.forward(bn, x))   # bn's own forward may be this function
        return F.max_pool2d(y, 2) if pool else y
    y, mean, var = _BNReLU.apply(x, bn.weight, bn.bias, bn.eps, pool)
    _update_running_stats(bn, mean, var, x.numel() // x.size(1))
    return y


class _MaxBlur(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: torch.Tensor, stride: int, circular: bool) -> torch.Tensor:
        y, winners = torch.ops.shiftlab_kernels.maxblur_forward(x, taps, stride, circular, True)
        ctx.save_for_backward(winners, taps)
        ctx.stride, ctx.circular, ctx.dtype = stride, circular, x.dtype
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        winners, taps = ctx.saved_tensors
        dx = torch.ops.shiftlab_kernels.maxblur_backward(grad, winners, taps, ctx.stride, ctx.circular, ctx.dtype)
        return dx, None, None, None


def fused_maxblur_applies(x: torch.Tensor, filt_size: int, circular: bool) -> bool:
    """Whether maxblur runs the compiled op on x where the unfused layer gives the same result: a non-empty CPU (N, C,
    H, W) map, float32 or under autocast (the layer's float32 output), the blur's padding m // 2 at most the map's
    side (circular: it wraps around once) or smaller than it (reflect), kernels built."""
    pad, side = filt_size // 2, min(x.shape[-2:])
    return (x.numel() > 0 and (pad <= side if circular else pad < side)
            and (x.dtype == torch.float32 or torch.is_autocast_enabled(x.device.type))
            and _runs_compiled(x, FUSED_DTYPES))


def maxblur(x: torch.Tensor, taps: torch.Tensor, stride: int, circular: bool) -> torch.Tensor:
    """Subsample_s . Blur_{a a^T} . Max_{2,1} in float32, one compiled op: y[i, j] = sum_{a, b} a_a a_b
    max x[s i + a - lo + {0, 1}, s j + b - lo + {0, 1}], lo = (m - 1) // 2, the max's indices mod H, W (circular) or
    clamped (replicate), the blur's mod H, W (circular) or reflected at the borders (reflect)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxBlur.apply(x, taps, stride, circular)
    return torch.ops.shiftlab_kernels.maxblur_forward(x, taps, stride, circular, False)[0]   # no backward: no winners


class _Aps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        y, phase = torch.ops.shiftlab_kernels.aps_forward(z, stride)
        ctx.save_for_backward(phase)
        ctx.stride, ctx.size = stride, z.shape[-2:]
        ctx.mark_non_differentiable(phase)
        return y, phase

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _phase):
        (phase,) = ctx.saved_tensors
        return torch.ops.shiftlab_kernels.aps_backward(grad, phase, *ctx.size, ctx.stride), None


def fused_aps_applies(z: torch.Tensor, stride: int, norm: str) -> bool:
    """Whether aps runs the compiled op on z: the l2 norm, a CPU float32 / bfloat16 (N, C, H, W) map whose height and
    width the stride divides, kernels built."""
    return (norm == "l2" and z.numel() > 0 and z.shape[-2] % stride == 0 and z.shape[-1] % stride == 0
            and _runs_compiled(z, FUSED_DTYPES))


def aps(z: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """APS_s with the l2 norm, one compiled op: z[n, :, i_n::s, j_n::s] for the phase (i_n, j_n) of largest
    ||z[n, :, i::s, j::s]||_2 (the first on a tie), and the phases i_n * s + j_n: ((N, C, H/s, W/s), (N,))."""
    return _Aps.apply(z, stride)


class _StemConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kernel = weight.shape[-2:]
        return torch.ops.shiftlab_kernels.stem_conv_forward(x, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return None, torch.ops.shiftlab_kernels.stem_conv_weight_grad(grad, x, *ctx.kernel)


def stem_conv_applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether stem_conv computes conv(x): one input channel, stride 1, no dilation, groups or bias, an input that
    needs no gradient (a batch of images), float32 input and weights, or bfloat16 autocast; kernels built."""
    autocast = torch.is_autocast_enabled(x.device.type)
    return (conv.in_channels == 1 and conv.groups == 1 and conv.bias is None and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and not x.requires_grad and x.numel() > 0
            and (torch.get_autocast_dtype(x.device.type) == torch.bfloat16 if autocast
                 else x.dtype == conv.weight.dtype == torch.float32)
            and _runs_compiled(x, FUSED_DTYPES))


def _as_autocast_would(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Under bfloat16 autocast, the input and the float32 weights rounded to bfloat16 as autocast's conv2d rounds
    them."""
    if torch.is_autocast_enabled(x.device.type):
        return x.to(torch.bfloat16), weight.to(torch.bfloat16).float()
    return x, weight


def stem_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y[n, c, i, j] = sum_{a, b} w[c, 0, a, b] x[n, 0, i + a, j + b] (conv2d of a padded one-channel input, stride 1),
    channels-last; under bfloat16 autocast x and w rounded to bfloat16 first and y bfloat16, as autocast's conv2d."""
    return _StemConv.apply(*_as_autocast_would(x, weight))
