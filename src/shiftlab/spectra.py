"""The frequency content of images and feature maps: power spectra and the share of power a stride-s subsampling
aliases."""
from __future__ import annotations

import torch


def _folds(n: int, stride: int) -> torch.Tensor:
    """DFT bins k = 0..n-1 whose frequency 2π|k|/n (|k| = min(k, n-k)) lies above the new Nyquist π/stride."""
    k = torch.arange(n)
    return 2 * stride * torch.minimum(k, n - k) > n


def power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Mean over images and channels of |DFT(x)|^2, zero frequency moved to the centre: (H, W)."""
    return torch.fft.fftshift(torch.fft.fft2(x.double()).abs().square().mean((0, 1))).float()


def aliased_fraction(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """Per image Σ_{max(|ω_y|,|ω_x|) > π/s} |X̂|² / Σ_{ω≠0} |X̂|² (2-D DFT, channels summed): energy x[::s, ::s] folds."""
    h, w = x.shape[-2:]
    power = torch.fft.fft2(x.double()).abs().square().sum(-3)
    above = _folds(h, stride)[:, None] | _folds(w, stride)[None, :]
    total = power.sum((-2, -1)) - power[..., 0, 0]
    return ((power * above).sum((-2, -1)) / total.clamp_min(1e-300)).float()
