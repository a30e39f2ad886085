"""The shift explorer's data: each network's class probabilities for a few test images at every shift a reader can
make on the page, computed once by the run and packed for a page that works offline.

Circular shifts are band-limited (``shifts.fourier_shift``) on a grid of 1/steps px over one period of P px in each
direction; whole-pixel shifts are its points with integer coordinates, where the band-limited shift is exactly
``torch.roll``. A network with circular padding and total stride S = P gives the same output for shifts that differ by
a multiple of P (chapter 2), so one period is every circular shift. Crop shifts move the 32-px window over the
image's mosaic frame (``shifts.window``, crop_max px of neighbours around it) by whole pixels up to crop_max in each
direction.

Probabilities are stored in thousandths (unsigned 16-bit, little-endian, base64): what the page shows, to 0.1 %. The
page gets them compressed (``compress``: byte planes, zlib) and its pixels as bytes (base64), inline.
"""
from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from . import inference, shifts

SCALE = 1000          # probabilities are stored as round(p * SCALE)
FORMAT = "explorer/2"   # the data's layout, part of its evaluation-cache key
SCRIPT, STYLE = Path(__file__).with_name("explorer.js"), Path(__file__).with_name("explorer.css")


def pack(probs: torch.Tensor) -> str:
    """round(p * SCALE) as little-endian uint16, base64."""
    q = torch.round(probs.double() * SCALE).to(torch.int64).numpy().astype("<u2")
    return base64.b64encode(q.tobytes()).decode("ascii")


def unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """The thousandths that pack wrote, as an int array of shape."""
    return np.frombuffer(base64.b64decode(text), dtype="<u2").reshape(shape).astype(np.int64)


def compress(text: str) -> str:
    """pack's thousandths for the page: all high bytes, then all low bytes (probabilities near 0 and 1 make long runs),
    zlib-deflated at level 9, base64; the page inflates them with the browser's DecompressionStream("deflate")."""
    q = np.frombuffer(base64.b64decode(text), dtype="<u2")
    planes = np.concatenate([(q >> 8).astype(np.uint8), (q & 0xFF).astype(np.uint8)])
    return base64.b64encode(zlib.compress(planes.tobytes(), 9)).decode("ascii")


def decompress(text: str) -> np.ndarray:
    """The thousandths that compress wrote, flat (int64)."""
    planes = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8).astype(np.int64)
    n = len(planes) // 2
    return (planes[:n] << 8) | planes[n:]


def circular_grid(net: torch.nn.Module, x: torch.Tensor, period: int, steps: int) -> torch.Tensor:
    """Softmax outputs (N, period*steps, period*steps, K) of net at the band-limited circular shifts (i/steps, j/steps)
    px of each image of x (N, 1, H, W), i, j = 0 .. period*steps - 1."""
    if steps < 1 or period < 1:
        raise ValueError(f"period={period}, steps={steps} are invalid; valid: integers >= 1 (steps per pixel)")
    n = period * steps
    spectrum = torch.fft.rfft2(x)
    rows = []
    for i in range(n):
        moved = torch.cat([shifts.fourier_shift(x, i / steps, j / steps, spectrum) for j in range(n)])
        rows.append(inference.predict_probs(net, moved).view(n, len(x), -1).transpose(0, 1))
    return torch.stack(rows, 1)


def crop_grid(net: torch.nn.Module, frames: torch.Tensor, crop_max: int) -> torch.Tensor:
    """Softmax outputs (N, 2c+1, 2c+1, K) of net at the whole-pixel window shifts (dy, dx), -c..c each, of frames
    (N, 1, 32 + 2c, 32 + 2c)."""
    offsets = range(-crop_max, crop_max + 1)
    moved = torch.cat([shifts.window(frames, dy, dx) for dy in offsets for dx in offsets])
    n = len(offsets)
    return inference.predict_probs(net, moved).view(n, n, len(frames), -1).permute(2, 0, 1, 3)


def pick_images(circular: torch.Tensor, labels: torch.Tensor, steps: int, n_flip: int, n_other: int) -> list[int]:
    """Indices into the images of circular (N, G, G, K, one network's grid): the n_flip images classified right
    unshifted whose top-1 class changes at the most whole-pixel shifts (ties: the lower index), then the first
    n_other other images classified right unshifted."""
    top = circular[:, ::steps, ::steps].argmax(-1)                   # (N, P, P) whole-pixel shifts
    right = top[:, 0, 0] == labels
    changes = (top != top[:, :1, :1]).flatten(1).sum(1)
    order = sorted((i for i in range(len(labels)) if right[i] and changes[i] > 0), key=lambda i: (-int(changes[i]), i))
    flips = order[:n_flip]
    others = [i for i in range(len(labels)) if right[i] and i not in flips][:n_other]
    return flips + others


def data(nets: dict[str, torch.nn.Module], frames: torch.Tensor, labels: torch.Tensor, classes: list[str], *,
         period: int, steps: int = 4, n_flip: int = 8, n_other: int = 4) -> dict:
    """The explorer's data for the networks (label -> model; the first picks the images) on the candidates' frames
    (N, 1, 32 + 2c, 32 + 2c) in [0, 1], c = crop_max: the chosen images' centred windows and frames (pixels 0-255),
    labels, and each network's packed circular grid (shifts of the centred window) and crop grid (window shifts over
    the frame), shapes under "shapes"."""
    crop_max = (frames.shape[-1] - shifts.WINDOW) // 2
    x = shifts.window(frames, 0, 0)
    first = next(iter(nets.values()))
    chosen = pick_images(circular_grid(first, x, period, steps), labels, steps, n_flip, n_other)
    xs, fs = x[chosen], frames[chosen]
    circular = torch.stack([circular_grid(net, xs, period, steps) for net in nets.values()])
    crop = torch.stack([crop_grid(net, fs, crop_max) for net in nets.values()])
    pixels, frame_pixels = (torch.round(t[:, 0] * 255).to(torch.int64) for t in (xs, fs))
    return {"classes": list(classes), "networks": list(nets), "period": period, "steps": steps, "crop_max": crop_max,
            "scale": SCALE, "images": [{"index": int(i), "label": int(labels[i]), "pixels": p.flatten().tolist(),
                                        "frame": f.flatten().tolist()}
                                       for i, p, f in zip(chosen, pixels, frame_pixels, strict=True)],
            "shapes": {"circular": list(circular.shape), "crop": list(crop.shape)},
            "circular": pack(circular), "crop": pack(crop)}


def page_html(payload: dict) -> str:
    """The explorer's HTML: its style, its container, the data as a script assignment (probabilities compressed,
    pixels as bytes) and the page's script (all inline, so the page works from file:// with nothing to fetch)."""
    page = {**payload, "circular": compress(payload["circular"]), "crop": compress(payload["crop"]),
            "images": [{**im, **{k: base64.b64encode(bytes(im[k])).decode("ascii") for k in ("pixels", "frame")}}
                       for im in payload["images"]]}
    text = json.dumps(page, separators=(",", ":")).replace("</", "<\\/")
    return (f"<style>{STYLE.read_text()}</style>\n"
            f'<div id="shift-explorer" class="shift-explorer"></div>\n'
            f"<script>window.SHIFTLAB_EXPLORER = {text};</script>\n"
            f"<script>{SCRIPT.read_text()}</script>")
