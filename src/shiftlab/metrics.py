"""Shift-invariance and equivariance metrics.

Notation: f(x) is the softmax output, y(x) = argmax_k f_k(x).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import shifts as sh


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """accuracy: P[argmax f(x) == y]."""
    return (logits.argmax(1) == labels).float().mean().item()


def top1_changed(probs_a: torch.Tensor, probs_b: torch.Tensor) -> torch.Tensor:
    """Per image 1[argmax f(x) != argmax f(T x)]."""
    return probs_a.argmax(1) != probs_b.argmax(1)


def absolute_change(probs_a: torch.Tensor, probs_b: torch.Tensor) -> torch.Tensor:
    """Per image |f_k(x) - f_k(T x)| with k = argmax f(x), the class on top before the shift."""
    k = probs_a.argmax(1, keepdim=True)
    return (probs_a.gather(1, k) - probs_b.gather(1, k)).abs().squeeze(1)


def p_top1_change(probs_a: torch.Tensor, probs_b: torch.Tensor) -> float:
    """Azulay & Weiss P(top-1 change): P[argmax f(x) != argmax f(T x)]."""
    return top1_changed(probs_a, probs_b).float().mean().item()


def mean_absolute_change(probs_a: torch.Tensor, probs_b: torch.Tensor) -> float:
    """Azulay & Weiss MAC: E |f_k(x) - f_k(T x)| with k = argmax f(x), the class on top before the shift."""
    return absolute_change(probs_a, probs_b).mean().item()


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """||b - a|| / ||a|| over the whole batch (Frobenius norms)."""
    return ((b - a).norm() / a.norm().clamp_min(1e-12)).item()


@torch.no_grad()
def equivariance_error(fn, x: torch.Tensor, dy: int, dx: int) -> float:
    """min over output shifts k of ||fn(roll(x, d)) - roll(fn(x), k)|| / ||fn(x)||, d = (dy, dx):
    zero exactly when some shift of the output matches the shifted input (fn equivariant at d)."""
    ref, moved = fn(x), fn(sh.roll(x, dy, dx))
    h, w = ref.shape[-2:]
    return min(relative_change(sh.roll(ref, ky, kx), moved) for ky in range(h) for kx in range(w))


def flips_per_image(preds: torch.Tensor) -> torch.Tensor:
    """Per sequence of (N, J) predictions: mean over j = 2..J of 1[y_j != y_(j-1)]."""
    return (preds[:, 1:] != preds[:, :-1]).float().mean(1)


def period_gap(curves: torch.Tensor, step: int) -> float:
    """max_{n, d} |c_n(d + step) - c_n(d)| over (N, D) curves: zero when every curve repeats with period `step`."""
    return (curves[:, step:] - curves[:, :-step]).abs().max().item()


def flip_rate(preds: torch.Tensor) -> float:
    """Frame-to-frame flip rate of (N, J) predictions along sequences: mean 1[y_j != y_(j-1)], j = 2..J."""
    return flips_per_image(preds).mean().item()


def shift_grid(period: int) -> list[tuple[int, int]]:
    """All shifts (dy, dx) in {0..period-1}^2, row-major."""
    return [(dy, dx) for dy in range(period) for dx in range(period)]


def tile_periodic(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Tile a (P, P) grid of a quantity periodic in the shift to (size, size)."""
    reps = -(-size // grid.shape[-1])
    return grid.repeat(reps, reps)[:size, :size]


def fourier_shift_distance(f: torch.Tensor, ref: torch.Tensor, stride: int, dy: int, dx: int,
                           ref_spectrum: torch.Tensor | None = None) -> torch.Tensor:
    """Per image 1 - cos(f, T ref), T = band-limited shift by (dy, dx) / stride cells: f = F_l(roll(x, d)),
    ref = F_l(x). Zero for an equivariant layer on its lattice, and for an alias-free (band-limited) map
    at every shift, so what remains off the lattice is aliasing, not the map's lack of smoothness."""
    moved = sh.fourier_shift(ref, dy / stride, dx / stride, ref_spectrum)
    return (1 - F.cosine_similarity(f.flatten(1), moved.flatten(1), dim=1, eps=1e-12)).clamp_min(0.0)


