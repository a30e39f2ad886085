"""Common corruptions at five severities after ImageNet-C (Hendrycks & Dietterich 2019), for [0, 1] grey images
(N, 1, H, W).

Ten of ImageNet-C's fifteen corruptions, in its four families (noise; blur; weather: brightness; digital); glass blur,
elastic transform, snow, frost and fog need textures or per-pixel search that do not carry over to 32-px items. The
severities are ImageNet-C's own parameters, never tuned on a network of this book: intensities, factors and JPEG
qualities as they are, and lengths in pixels (blur radii and sigmas) times 32 / 224, the ratio of the frame widths.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torchvision.io import decode_jpeg, encode_jpeg

from . import shifts

SCALE = 32 / 224    # ImageNet-C's lengths are in pixels of a 224-px image
SEVERITIES: dict[str, tuple] = {
    "gaussian noise": (0.08, 0.12, 0.18, 0.26, 0.38),              # noise standard deviation
    "shot noise": (60, 25, 12, 5, 3),                               # photons at intensity 1
    "impulse noise": (0.03, 0.06, 0.09, 0.17, 0.27),               # fraction of pixels set to 0 or 1
    "defocus blur": tuple(r * SCALE for r in (3, 4, 6, 8, 10)),     # disk radius (px)
    "motion blur": tuple(s * SCALE for s in (3, 5, 8, 12, 15)),     # sigma of the one-sided streak (px)
    "zoom blur": (0.10, 0.15, 0.20, 0.24, 0.30),                    # largest magnification - 1
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),                        # added to every intensity
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),                         # factor towards the image mean
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),                         # side of the coarse grid / side of the image
    "jpeg": (25, 18, 15, 10, 7),                                    # JPEG quality
}
ZOOM_STEPS = (0.01, 0.01, 0.02, 0.02, 0.03)   # spacing of the magnifications 1, 1 + step, ..., per severity
CORRUPTIONS = tuple(SEVERITIES)


def gaussian_noise(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """clip(x + sigma n, 0, 1), n ~ N(0, 1) per pixel."""
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def shot_noise(x: torch.Tensor, photons: float, g: torch.Generator) -> torch.Tensor:
    """clip(Poisson(photons x) / photons, 0, 1)."""
    return (torch.poisson(x * photons, generator=g) / photons).clamp(0, 1)


def impulse_noise(x: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    """Salt and pepper: a fraction `amount` of the pixels, drawn independently, set to 0 or 1 with equal odds."""
    hit = torch.rand(x.shape, generator=g) < amount
    salt = (torch.rand(x.shape, generator=g) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x convolved with a 2-D kernel of odd side, zero (black) outside the frame."""
    k = kernel.to(x.dtype)
    return F.conv2d(x, k.expand(x.shape[1], 1, *k.shape), padding=k.shape[-1] // 2, groups=x.shape[1])


def disk(radius: float, supersample: int = 16) -> torch.Tensor:
    """The disk of `radius` px as a normalised kernel on the pixel grid: the blur of the bilinearly interpolated
    image by a uniform disk, sampled at the pixel centres, i.e. tap k = mean over points u of the disk of
    tri(u_y - k_y) tri(u_x - k_x), tri(t) = max(0, 1 - |t|) (points on a supersample-per-px grid), so a radius
    below half a pixel still blurs a little instead of rounding to a point."""
    reach, n = math.floor(radius) + 1, math.floor(radius * supersample)
    t = torch.arange(-n, n + 1, dtype=torch.float32) / supersample
    uy, ux = torch.meshgrid(t, t, indexing="ij")
    inside = uy ** 2 + ux ** 2 <= radius ** 2
    uy, ux = uy[inside], ux[inside]
    k = torch.arange(-reach, reach + 1, dtype=torch.float32)
    wy = (1 - (uy[:, None] - k[None, :]).abs()).clamp_min(0)
    wx = (1 - (ux[:, None] - k[None, :]).abs()).clamp_min(0)
    taps = wy.T @ wx / len(uy)
    return taps / taps.sum()


def defocus_blur(x: torch.Tensor, radius: float) -> torch.Tensor:
    """x convolved with the disk of `radius` px."""
    return _filter(x, disk(radius))


def _translate(x: torch.Tensor, ty: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
    """Each image moved by its own (ty, tx) px, bilinear, black outside the frame."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = -2 * tx / w, -2 * ty / h
    return shifts.affine(x, theta)


def motion_blur(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """A one-sided streak: sum_k w_k x moved by k px along an angle ~ U(-45 deg, 45 deg) drawn per image,
    w_k proportional to exp(-k^2 / 2 sigma^2) for k = 0..ceil(3 sigma)."""
    angle = (torch.rand(len(x), generator=g) * 90 - 45) * math.pi / 180
    steps = torch.arange(math.ceil(3 * sigma) + 1, dtype=x.dtype)
    w = torch.exp(-steps ** 2 / (2 * sigma ** 2))
    w = w / w.sum()
    return sum(wk * _translate(x, k * torch.sin(angle), k * torch.cos(angle)) for k, wk in zip(steps, w, strict=True))


def _zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """x magnified about its centre by `factor` (bilinear), the same frame."""
    return shifts.affine(x, torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=x.dtype).expand(len(x), 2, 3))


def zoom_blur(x: torch.Tensor, top: float, step: float) -> torch.Tensor:
    """The mean of x and x magnified by each factor 1, 1 + step, ..., 1 + top."""
    factors = [1 + i * step for i in range(round(top / step) + 1)]
    return (x + sum(_zoom(x, f) for f in factors)) / (len(factors) + 1)


def brightness(x: torch.Tensor, delta: float) -> torch.Tensor:
    """clip(x + delta, 0, 1) (ImageNet-C raises the HSV value; for grey images that is the intensity)."""
    return (x + delta).clamp(0, 1)


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """m + factor (x - m), m = per-image mean intensity."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (m + factor * (x - m)).clamp(0, 1)


def pixelate(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Box-averaged down to round(ratio H) px, then back up by nearest neighbour."""
    size = x.shape[-2:]
    small = F.interpolate(x, size=[max(1, round(ratio * s)) for s in size], mode="area")
    return F.interpolate(small, size=list(size), mode="nearest")


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image JPEG-encoded at `quality` from 8-bit intensities and decoded."""
    u8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
    decoded = decode_jpeg(encode_jpeg(list(u8), quality=quality))
    return torch.stack(decoded).to(x.dtype) / 255


def corrupt(x: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption `kind` at severity 1..5 (its random draws from `seed`)."""
    if kind not in SEVERITIES:
        raise ValueError(f"corruption {kind!r} is invalid; valid: {', '.join(CORRUPTIONS)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity={severity} is invalid; valid: 1..5")
    level, g = SEVERITIES[kind][severity - 1], torch.Generator().manual_seed(seed)
    random = {"gaussian noise": gaussian_noise, "shot noise": shot_noise, "impulse noise": impulse_noise,
              "motion blur": motion_blur}
    if kind in random:
        return random[kind](x, level, g)
    if kind == "zoom blur":
        return zoom_blur(x, level, ZOOM_STEPS[severity - 1])
    fixed = {"defocus blur": defocus_blur, "brightness": brightness, "contrast": contrast, "pixelate": pixelate,
             "jpeg": jpeg}
    return fixed[kind](x, level)


def error_table(acc: pd.DataFrame, reference: str) -> pd.DataFrame:
    """ImageNet-C's errors (Hendrycks & Dietterich 2019) per network and seed, from accuracy rows (network, seed,
    corruption, severity, accuracy; corruption 'none' is the clean image). With E_{s,c} the top-1 error under
    corruption c at severity s, E_c = mean_s E_{s,c} and E the clean error, the columns are E ('clean error'),
    E_c ('<c>'), E_c - E ('<c> added'), the unnormalised mCE mean_c E_c (the number Zhang reports), the mCE
    mean_c E_c(f) / E_c(ref) (AlexNet's place taken by the same seed's `reference` network) and the relative mCE
    mean_c (E_c(f) - E(f)) / (E_c(ref) - E(ref)); the last two are 1 for the reference."""
    err = acc.assign(error=1 - acc["accuracy"])
    clean = err[err.corruption == "none"].set_index(["network", "seed"])["error"]
    by_kind = err[err.corruption != "none"].groupby(["network", "seed", "corruption"])["error"].mean().unstack()
    kinds = [c for c in CORRUPTIONS if c in by_kind.columns]
    added = by_kind[kinds].sub(clean, axis=0)
    ref_kind = by_kind.xs(reference, level="network")[kinds]
    ref_added = added.xs(reference, level="network")
    seeds = by_kind.index.get_level_values("seed")
    out = pd.DataFrame({"clean error": clean.reindex(by_kind.index)}, index=by_kind.index)
    for c in kinds:
        out[c] = by_kind[c]
        out[f"{c} added"] = added[c]
    out["unnormalised mCE"] = by_kind[kinds].mean(axis=1)
    out["mCE"] = (by_kind[kinds].to_numpy() / ref_kind.loc[seeds].to_numpy()).mean(axis=1)
    out["relative mCE"] = (added.to_numpy() / ref_added.loc[seeds].to_numpy()).mean(axis=1)
    return out.reset_index()
