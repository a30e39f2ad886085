"""Image corruptions at five severities, in the spirit of ImageNet-C, for [0, 1] images (N, C, H, W)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SEVERITIES: dict[str, tuple[float, ...]] = {
    # calibrated so that the converged MaxPool baseline degrades gradually, not to chance at once
    "gaussian noise": (0.03, 0.05, 0.07, 0.10, 0.14),   # noise standard deviation
    "gaussian blur": (0.5, 0.75, 1.0, 1.25, 1.5),       # kernel standard deviation (px)
    "contrast": (0.95, 0.9, 0.85, 0.8, 0.7),            # factor towards the image mean
}
CORRUPTIONS = tuple(SEVERITIES)


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """clip(x + sigma * n, 0, 1), n ~ N(0, 1) per pixel."""
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D Gaussian taps exp(-k^2 / 2 sigma^2) / Z for k in [-ceil(3 sigma), ceil(3 sigma)]."""
    radius = max(1, math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-k**2 / (2 * sigma**2))
    return taps / taps.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with zero (black) padding."""
    taps = gaussian_kernel(sigma)
    c, r = x.shape[1], len(taps) // 2
    x = F.conv2d(x, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """m + factor * (x - m), m = per-image mean intensity."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (m + factor * (x - m)).clamp(0, 1)


def corrupt(x: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption `kind` at severity 1..5 (noise drawn from `seed`)."""
    if kind not in SEVERITIES:
        raise ValueError(f"corruption {kind!r} is invalid; valid: {', '.join(CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity={severity} is invalid; valid: 1..5")
    level = SEVERITIES[kind][severity - 1]
    if kind == "gaussian noise":
        return gaussian_noise(x, level, torch.Generator().manual_seed(seed))
    if kind == "gaussian blur":
        return gaussian_blur(x, level)
    return contrast(x, level)
