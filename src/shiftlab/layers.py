"""Downsampling layers, plain PyTorch: anti-aliased (Zhang 2019: blur with a fixed binomial filter, then subsample)
and adaptive polyphase sampling (Chaman & Dokmanić 2021: keep the polyphase component of largest norm).

Decompositions (paper notation):
  MaxPool_{2,2}       = Subsample_2 . Max_{2,1}            -> MaxBlurPool = BlurPool_m . Max_{2,1}
  ReLU . Conv_{k,2}   = Subsample_2 . ReLU . Conv_{k,1}    -> ConvBlurPool = BlurPool_m . ReLU . Conv_{k,1}
  AvgPool_{2,2}       = Subsample_2 . Blur_2               -> BlurPool_m
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import in_fp32

PAD_MODES = ("zeros", "reflect", "replicate", "circular")
FILTER_SIZES = tuple(range(1, 8))
FILTER_NAMES = {1: "Delta-1", 2: "Rect-2", 3: "Tri-3", 4: "Tri-4", 5: "Bin-5", 6: "Bin-6", 7: "Bin-7"}


def _check_pad_mode(pad_mode: str) -> str:
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode={pad_mode!r} is invalid; valid: {', '.join(PAD_MODES)}")
    return pad_mode


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad (left, right, top, bottom) with a named mode (zeros, reflect, replicate, circular)."""
    if not any(pads):
        return x
    if _check_pad_mode(mode) == "circular":
        h, w = x.shape[-2:]
        if max(pads[:2]) > w or max(pads[2:]) > h:
            raise ValueError(f"circular padding {pads} wraps more than once around a {h}x{w} map")
    return F.pad(x, pads, mode="constant" if mode == "zeros" else mode)


def _check_size(size: int) -> int:
    if size not in FILTER_SIZES:
        raise ValueError(f"filt_size={size} is invalid; valid: {FILTER_SIZES[0]}..{FILTER_SIZES[-1]}")
    return size


def filter_name(size: int) -> str:
    """The paper's name of the binomial filter of that size: Delta-1, Rect-2, Tri-3, Tri-4, Bin-5..Bin-7."""
    return FILTER_NAMES[_check_size(size)]


def binomial_filter(size: int) -> torch.Tensor:
    """1-D binomial taps a_k = C(size-1, k) / 2^(size-1), k = 0..size-1 (sum 1)."""
    _check_size(size)
    taps = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    return (taps / taps.sum()).float()


def frequency_response(size: int, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """n frequencies ω on [0, π] and |A(ω)| = |Σ_k a_k e^{-iωk}| of the binomial filter (= |cos(ω/2)|^(size-1))."""
    omega = torch.linspace(0.0, math.pi, n, dtype=torch.float64)
    k = torch.arange(size, dtype=torch.float64)
    taps = binomial_filter(size).to(torch.complex128)
    return omega, (torch.exp(-1j * omega[:, None] * k[None, :]) @ taps).abs()


def aliased_energy_fraction(size: int) -> float:
    """∫_{π/2}^π |A|² dω / ∫_0^π |A|² dω = 1/2 − 2/(π r_0) Σ_{d≥1} r_d sin(πd/2)/d exactly, r_d = Σ_k a_k a_{k+d}."""
    a = binomial_filter(size).double()
    r = [(a[: size - d] * a[d:]).sum().item() for d in range(size)]
    folded = sum(r[d] * math.sin(math.pi * d / 2) / d for d in range(1, size))
    return 0.5 - 2.0 * folded / (math.pi * r[0])


def binomial_filter_2d(size: int) -> torch.Tensor:
    """2-D separable binomial filter a a^T (sum 1)."""
    a = binomial_filter(size)
    return a[:, None] * a[None, :]


def blur_pads(size: int) -> tuple[int, int, int, int]:
    """Padding (left, right, top, bottom) = (floor((m-1)/2), ceil((m-1)/2)) per axis, as in antialiased-cnns."""
    lo, hi = (size - 1) // 2, size // 2
    return (lo, hi, lo, hi)


class BlurPool(nn.Module):
    """Subsample_s . Blur_m: depthwise convolution with a fixed binomial filter, then stride s."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride={stride} is invalid; valid: an integer >= 1")
        self.channels, self.filt_size, self.stride = channels, filt_size, stride
        self.pad_mode = _check_pad_mode(pad_mode)
        kernel = binomial_filter_2d(filt_size)[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer("kernel", kernel, persistent=False)
        self.register_buffer("taps", binomial_filter(filt_size), persistent=False)

    @in_fp32
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filt_size == 1:
            return x[:, :, ::self.stride, ::self.stride]
        return F.conv2d(self.padded(x), self.kernel, stride=self.stride, groups=self.channels)

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        """x padded by (floor((m-1)/2), ceil((m-1)/2)) per axis in the layer's padding mode."""
        return pad2d(x, blur_pads(self.filt_size), self.pad_mode)

    def check_mean_invariance(self, x: torch.Tensor, atol: float = 1e-5) -> float:
        """The largest |mean(BlurPool(roll(x, d))) - mean(BlurPool(x))| (mean over each image's output map, per
        channel) over the four circular shifts of one 2 x 2 cell. With circular padding, stride 2 and a binomial filter
        of size m >= 2, A(π) = 0, so the blurred map has no energy at the aliased frequencies (π, 0), (0, π), (π, π)
        and each of its four phases has the same mean: BlurPool followed by global average pooling is exactly shift
        invariant (chapter 7's lattice of S/2). Raises AssertionError, naming the shift, when it exceeds atol."""
        if self.pad_mode != "circular" or self.stride != 2 or self.filt_size < 2 or x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(f"the check holds for pad_mode='circular', stride 2, filt_size >= 2 and even map sizes; "
                             f"got pad_mode={self.pad_mode!r}, stride={self.stride}, filt_size={self.filt_size}, "
                             f"a {x.shape[-2]}x{x.shape[-1]} map")
        ref = self(x).double().mean(dim=(-2, -1))
        worst = 0.0
        for dy in range(self.stride):
            for dx in range(self.stride):
                moved = self(torch.roll(x, (dy, dx), dims=(-2, -1))).double().mean(dim=(-2, -1))
                err = (moved - ref).abs().max().item()
                if err > atol:
                    raise AssertionError(f"mean of BlurPool(filt_size={self.filt_size}) moves under shift "
                                         f"({dy}, {dx}): {err:.3g} > {atol}")
                worst = max(worst, err)
        return worst

    def extra_repr(self) -> str:
        return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}, pad_mode={self.pad_mode}"


class DenseMax(nn.Module):
    """Max_{2,1}: 2x2 max at stride 1, padded by one pixel right/bottom so the map keeps its size."""

    def __init__(self, pad_mode: str = "replicate"):
        super().__init__()
        self.pad_mode = "circular" if _check_pad_mode(pad_mode) == "circular" else "replicate"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(pad2d(x, (0, 1, 0, 1), self.pad_mode), kernel_size=2, stride=1)


class MaxBlurPool(nn.Sequential):
    """BlurPool_m . Max_{2,1} (Zhang 2019, eq. 3): y = Subsample_s(Blur_m(Max_{2,1}(x))); with filt_size 1 it equals
    MaxPool(2, 2) exactly."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
        super().__init__(DenseMax(pad_mode), BlurPool(channels, filt_size, stride, pad_mode))


class ConvBlurPool(nn.Sequential):
    """BlurPool_m . ReLU . BN . Conv_{k,1}: a strided conv with the subsampling moved after a blur."""

    def __init__(self, in_channels: int, out_channels: int, filt_size: int = 3, stride: int = 2,
                 pad_mode: str = "reflect", kernel_size: int = 3, conv_padding: str = "zeros"):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                      padding_mode=conv_padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            BlurPool(out_channels, filt_size, stride, pad_mode),
        )

    def strided_equivalent(self) -> nn.Sequential:
        """ReLU . BN . Conv_{k,s} sharing this block's conv weights and batch norm (equal to it when filt_size = 1)."""
        conv, bn, blur = self[0], self[1], self[3]
        strided = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=blur.stride,
                            padding=conv.padding, padding_mode=conv.padding_mode, bias=False)
        strided.weight = conv.weight
        return nn.Sequential(strided, bn, nn.ReLU())


APS_NORMS = ("l1", "l2", "linf")


def polyphase_components(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """The s² polyphase components x[..., i::s, j::s], (i, j) row-major: (N, s², C, H/s, W/s)."""
    n, c, h, w = x.shape
    return _cells(x, stride).permute(0, 2, 4, 5, 1, 3).reshape(n, stride * stride, c, h // stride, w // stride)


def _cells(x: torch.Tensor, stride: int) -> torch.Tensor:
    """x (N, C, H, W) in its physical channels-last order, split into s x s cells: (N, H/s, s, W/s, s, C)."""
    n, c, h, w = x.shape
    if h % stride or w % stride:
        raise ValueError(f"a {h}x{w} map has no {stride}x{stride} polyphase decomposition; valid: sizes divisible "
                         f"by {stride} (APS is exact only when every map it subsamples has such a size)")
    return x.permute(0, 2, 3, 1).reshape(n, h // stride, stride, w // stride, stride, c)


def _phase_norms(x: torch.Tensor, stride: int, norm: str) -> torch.Tensor:
    """||x[..., i::s, j::s]||_p per image and phase (N, s²), float64: each pixel's channels are reduced in float32
    in a fixed order, so a circular shift permutes these per-pixel values exactly, then the pixels in float64."""
    cells = _cells(x.detach(), stride).float()
    if norm == "linf":
        return cells.abs().amax(dim=(1, 3, 5)).double().flatten(1)
    per_pixel = (cells.square() if norm == "l2" else cells.abs()).sum(-1).double()
    total = per_pixel.sum(dim=(1, 3)).flatten(1)
    return total.sqrt() if norm == "l2" else total


def _at_phase(x: torch.Tensor, phase: torch.Tensor, stride: int) -> torch.Tensor:
    """x[n, :, i_n::s, j_n::s] per image, phase_n = i_n * s + j_n: (N, C, H/s, W/s), channels-last (a gather along
    the phase axis, so the batch size stays a free dimension when the network is exported)."""
    cells = _cells(x, stride)
    n, hs, _, ws, _, c = cells.shape
    components = cells.permute(0, 2, 4, 1, 3, 5).reshape(n, stride * stride, hs, ws, c)
    kept = components.gather(1, phase.view(-1, 1, 1, 1, 1).expand(-1, 1, hs, ws, c)).squeeze(1)
    return kept.permute(0, 3, 1, 2)


class ApsPool(nn.Module):
    """Adaptive polyphase sampling (Chaman & Dokmanić 2021), [Blur_m then] APS_s: per image, of the s²
    components x[..., i::s, j::s] keep the one of largest l_p norm (the first in row-major (i, j) order on
    a tie). A circular shift of x permutes the components, so the same one wins, circularly shifted by
    whole cells: with circular padding everywhere the network is exactly shift invariant. On an all-black
    map every component is zero, so which one is kept does not matter."""

    def __init__(self, channels: int, filt_size: int = 1, stride: int = 2, pad_mode: str = "circular",
                 norm: str = "l2"):
        super().__init__()
        if norm not in APS_NORMS:
            raise ValueError(f"norm={norm!r} is invalid; valid: {', '.join(APS_NORMS)}")
        self.stride, self.norm = stride, norm
        self.blur = BlurPool(channels, filt_size, 1, pad_mode) if filt_size > 1 else None

    def prefilter(self, x: torch.Tensor) -> torch.Tensor:
        """Blur_m x at stride 1 (x itself when filt_size is 1): the map whose polyphase components are compared."""
        return x if self.blur is None else self.blur(x)

    def phase_norms(self, x: torch.Tensor) -> torch.Tensor:
        """||[Blur_m] x[..., i::s, j::s]||_p per image and phase i*s + j: (N, s²), float64."""
        return _phase_norms(self.prefilter(x), self.stride, self.norm)

    def selected_phase(self, x: torch.Tensor) -> torch.Tensor:
        """argmax_(i, j) ||[Blur_m] x[..., i::s, j::s]||_p per image, as the index i*s + j: (N,)."""
        return self.phase_norms(x).argmax(1)

    def keep(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """APS_s of an already prefiltered map z: z at each image's largest-norm phase, and that phase i*s + j:
        ((N, C, H/s, W/s), (N,))."""
        phase = _phase_norms(z, self.stride, self.norm).argmax(1)
        return _at_phase(z, phase, self.stride), phase

    def subsample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[Blur_m] x at each image's largest-norm phase, and that phase i*s + j: ((N, C, H/s, W/s), (N,))."""
        return self.keep(self.prefilter(x))

    def forward(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """[Blur_m] x at each image's largest-norm phase, or at the given phases (N,): a residual block's shortcut
        takes its main path's, so both branches keep the same sampling grid."""
        if phase is None:
            return self.subsample(x)[0]
        return _at_phase(self.prefilter(x), phase, self.stride)

    def check_invariance(self, x: torch.Tensor, atol: float = 0.0) -> float:
        """The largest |APS(roll(x, d)) - roll(APS(x), c)| over every circular shift d = (dy, dx) of one s x s cell,
        where c = floor((p + d) / s) per axis for the phase p = (i, j) APS(x) kept: a circular shift permutes the
        polyphase components, so the same one wins and the output moves by whole cells (Chaman & Dokmanić 2021,
        the property behind exact invariance). Raises AssertionError, naming the shift, when it exceeds atol, and
        ValueError for a blur that is not circular (then no shift is exact)."""
        if self.blur is not None and self.blur.pad_mode != "circular":
            raise ValueError(f"a blur padded with {self.blur.pad_mode!r}: only circular padding commutes with shifts")
        y, phase = self.subsample(x)
        worst = 0.0
        for dy in range(self.stride):
            for dx in range(self.stride):
                moved = self.subsample(torch.roll(x, (dy, dx), dims=(-2, -1)))[0]
                for n in range(len(x)):
                    i, j = divmod(int(phase[n]), self.stride)
                    cells = ((i + dy) // self.stride, (j + dx) // self.stride)
                    err = (moved[n] - torch.roll(y[n], cells, dims=(-2, -1))).abs().max().item()
                    if err > atol:
                        raise AssertionError(f"APS is not shift equivariant at shift ({dy}, {dx}), "
                                             f"image {n}: {err:.3g}")
                    worst = max(worst, err)
        return worst

    def extra_repr(self) -> str:
        return f"stride={self.stride}, norm={self.norm}"


class MaxApsPool(nn.Sequential):
    """APS_s . [Blur_m] . Max_{2,1}: MaxPool with its fixed subsampling replaced by adaptive polyphase sampling
    (Chaman & Dokmanić 2021; APS-LPF with filt_size > 1)."""

    def __init__(self, channels: int, filt_size: int = 1, stride: int = 2, pad_mode: str = "circular"):
        super().__init__(DenseMax(pad_mode), ApsPool(channels, filt_size, stride, pad_mode))
