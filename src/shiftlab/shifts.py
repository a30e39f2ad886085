"""Image shifts, batched with one offset per image.

* ``roll``: circular shift, ``out[i, j] = x[(i - dy) mod H, (j - dx) mod W]``.
* ``translate``: shift with zero (black) fill; identical to zero-padding by m and cropping the
  original frame at offset (m - dy, m - dx), i.e. Zhang's crop-shift from a larger frame.
* ``window``: the size x size window of a larger frame (``shiftlab.data.mosaic_frames``) whose content moves by
  (dy, dx): ``out[i, j] = x[c - dy + i, c - dx + j]``, c = (H - size) / 2, the centred window at (0, 0). Content
  enters at the edges, as in a crop of a natural image; nothing wraps and nothing turns black.
* embedding shifts move an object on a canvas: see ``shiftlab.data.embed``.
"""
from __future__ import annotations

import math

import torch

SHIFT_KINDS = ("roll", "crop", "window")
WINDOW = 32       # the side of a "window" shift: the input of the 32-px networks


def _per_image(offset: int | torch.Tensor, n: int) -> torch.Tensor:
    return torch.as_tensor(offset, dtype=torch.long).reshape(-1).expand(n)


def _source_index(size: int, offset: torch.Tensor) -> torch.Tensor:
    """Row (or column) index into the source for every output position: (N, size)."""
    return torch.arange(size)[None, :] - offset[:, None]


def _gather(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """out[n, :, i, j] = x[n, :, rows[n, i], cols[n, j]]: (N, C, len(rows[n]), len(cols[n]))."""
    n, c, h, w = x.shape
    oh, ow = rows.shape[1], cols.shape[1]
    flat = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, oh * ow).expand(n, c, oh * ow)
    return x.reshape(n, c, h * w).gather(2, flat).reshape(n, c, oh, ow)


def windows(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size window of each image n with its top-left corner at (tops[n], lefts[n])."""
    return _gather(x, tops[:, None] + torch.arange(size), lefts[:, None] + torch.arange(size))


def window(frames: torch.Tensor, dy: int | torch.Tensor, dx: int | torch.Tensor, size: int = WINDOW) -> torch.Tensor:
    """The size x size window of each (N, C, H, W) frame in which the content has moved down by dy and right by dx
    pixels from the centred window (one offset per frame or one for all); refuses a window that leaves its frame."""
    n, _, h, w = frames.shape
    dy, dx = _per_image(dy, n), _per_image(dx, n)
    tops, lefts = (h - size) // 2 - dy, (w - size) // 2 - dx
    if (h - size) % 2 or (w - size) % 2 or tops.min() < 0 or lefts.min() < 0 or tops.max() > h - size \
            or lefts.max() > w - size:
        most = max(int(dy.abs().max()), int(dx.abs().max()))
        raise ValueError(f"a {size}-px window moved by up to {most} px does not fit a {h}x{w} frame; valid: frames of "
                         f"side {size} + 2k, shifts of at most k px")
    return windows(frames, tops, lefts, size)


def roll(x: torch.Tensor, dy: int | torch.Tensor, dx: int | torch.Tensor) -> torch.Tensor:
    """Circular shift of (N, C, H, W) images by (dy, dx) pixels, one offset per image or one for all."""
    if isinstance(dy, int) and isinstance(dx, int):
        return torch.roll(x, (dy, dx), dims=(-2, -1))
    n, _, h, w = x.shape
    rows = _source_index(h, _per_image(dy, n)) % h
    cols = _source_index(w, _per_image(dx, n)) % w
    return _gather(x, rows, cols)


def translate(x: torch.Tensor, dy: int | torch.Tensor, dx: int | torch.Tensor) -> torch.Tensor:
    """Shift (N, C, H, W) images by (dy, dx) pixels with black fill (content leaving the frame is lost)."""
    n, _, h, w = x.shape
    rows = _source_index(h, _per_image(dy, n))
    cols = _source_index(w, _per_image(dx, n))
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    out = _gather(x, rows.clamp(0, h - 1), cols.clamp(0, w - 1))
    return out * valid[:, None].to(x.dtype)


def crop_shift(x: torch.Tensor, pad: int, oy: int | torch.Tensor, ox: int | torch.Tensor) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop the original H x W frame at offset (oy, ox) in 0..2*pad."""
    return translate(x, pad - torch.as_tensor(oy), pad - torch.as_tensor(ox))


def shift(x: torch.Tensor, dy: int | torch.Tensor, dx: int | torch.Tensor, kind: str) -> torch.Tensor:
    """Shift by (dy, dx) with the named kind: 'roll' (circular), 'crop' (black fill) or 'window' (x are frames: the
    WINDOW-px window moved by (dy, dx); content enters, nothing is lost to black)."""
    if kind == "roll":
        return roll(x, dy, dx)
    if kind == "crop":
        return translate(x, dy, dx)
    if kind == "window":
        return window(x, dy, dx)
    raise ValueError(f"shift kind={kind!r} is invalid; valid: {', '.join(SHIFT_KINDS)}")


def random_offsets(n: int, max_shift: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image offsets (dy, dx) drawn uniformly from {-max_shift..max_shift}^2."""
    dy = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    dx = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    return dy, dx


def random_walk(n: int, frames: int, limit: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets (N, frames) of a lazy random walk from (0, 0): each frame moves by a step in {-1, 0, 1}^2,
    clamped to [-limit, limit]; small random moves, like a hand-held camera."""
    steps = torch.randint(-1, 2, (2, n, frames - 1), generator=generator)
    walk = torch.zeros(2, n, frames, dtype=torch.long)
    for j in range(1, frames):
        walk[:, :, j] = (walk[:, :, j - 1] + steps[:, :, j - 1]).clamp(-limit, limit)
    return walk[0], walk[1]


def diagonal_path(x: torch.Tensor, max_shift: int, kind: str = "roll") -> torch.Tensor:
    """The images shifted by (d, d) for d = 0..max_shift: shape (max_shift + 1, N, C, H, W)."""
    return torch.stack([shift(x, d, d, kind) for d in range(max_shift + 1)])


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x resampled through the affine maps theta (N, 2, 3): output pixel u (normalised coordinates in [-1, 1], x
    right, y down) samples the input at theta (u, 1), bilinear, black outside the frame."""
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate (N, C, H, W) images counter-clockwise about the image centre by `degrees` (one angle, or one
    per image): bilinear sampling with black fill; a single multiple of 90° is the exact pixel permutation."""
    if not torch.is_tensor(degrees) and float(degrees) % 90 == 0:
        return torch.rot90(x, int(degrees) // 90 % 4, dims=(-2, -1))
    theta = torch.deg2rad(torch.as_tensor(degrees, dtype=x.dtype).reshape(-1).expand(len(x)))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    # output (u, v) samples the input at R(-θ)(u, v) in normalised coordinates (x right, y down)
    return affine(x, torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1))


def fourier_shift(f: torch.Tensor, ty: float, tx: float, spectrum: torch.Tensor | None = None) -> torch.Tensor:
    """Band-limited (sinc) circular shift of the last two axes by (ty, tx) cells, fractions allowed:
    F^-1[F(f) exp(-2πi (k_y ty / H + k_x tx / W))], real part; the Nyquist bin (even sizes) is kept
    real (its cosine), so an integer shift is exactly a roll. The shifted spectrum stays Hermitian, so half of it
    suffices (rfft2 / irfft2). Pass spectrum = rfft2(f) to reuse it."""
    h, w = f.shape[-2:]
    ky, kx = torch.fft.fftfreq(h, device=f.device), torch.fft.rfftfreq(w, device=f.device)
    spectrum = torch.fft.rfft2(f) if spectrum is None else spectrum
    ramp = _phase_ramp(ky, ty, h)[:, None] * _phase_ramp(kx, tx, w)[None, :]
    return torch.fft.irfft2(spectrum * ramp, s=(h, w))


def _phase_ramp(k: torch.Tensor, t: float, n: int) -> torch.Tensor:
    """exp(-2πi k t) for the DFT frequencies k (cycles per sample); cos(π t) at the Nyquist bin of even n."""
    ramp = torch.exp(-2j * torch.pi * k * t)
    if n % 2 == 0:
        ramp[n // 2] = math.cos(math.pi * t)
    return ramp
