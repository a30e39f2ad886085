"""Shift-invariance and equivariance metrics.

Notation: f(x) is the softmax output, y(x) = argmax_k f_k(x).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import runtime
from . import shifts as sh
from .data import embed, resize


def batched_outputs(model: nn.Module, x: torch.Tensor,
                    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                    batch_size: int = 128) -> torch.Tensor:
    """forward(model, x_b) (default model(x_b)) over batches x_b of x, in eval mode, on the model's device, under
    torch.inference_mode at the evaluation precision (``runtime.set_precision``); concatenated as float32 on the
    CPU, outside inference mode, so the result is an ordinary tensor (free to change in place or use in autograd)."""
    model.eval()
    device = next(model.parameters()).device
    forward = forward or (lambda m, xb: m(xb))
    with torch.inference_mode(), runtime.autocast(device):
        parts = [forward(model, x[i:i + batch_size].to(device, memory_format=torch.channels_last)).float().cpu()
                 for i in range(0, len(x), batch_size)]
    return torch.cat(parts)


def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Logits of model on x (``batched_outputs``): (N, K) on the CPU."""
    return batched_outputs(model, x, batch_size=batch_size)


def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Softmax outputs f(x) of model on x: (N, K)."""
    return predict_logits(model, x, batch_size).softmax(1)


def embedded_inputs(objects: torch.Tensor, canvas: int, size: int, y: int, x: int) -> torch.Tensor:
    """embed(resize(o, size), canvas, (y, x)) for every object o: each resized to size x size px and
    placed with its top-left corner at (y, x) on a black canvas x canvas image."""
    n = len(objects)
    return embed(resize(objects, size), canvas, torch.full((n,), y), torch.full((n,), x))


def embedded_probs(model: nn.Module, objects: torch.Tensor, canvas: int, size: int, y: int, x: int,
                   batch_size: int = 128) -> torch.Tensor:
    """f(embedded_inputs(objects, canvas, size, y, x)): (N, K) softmax outputs on the placed objects."""
    return predict_probs(model, embedded_inputs(objects, canvas, size, y, x), batch_size)


def embedded_probs_at(model: nn.Module, objects: torch.Tensor, canvas: int,
                      placements: list[tuple[int, int, int]], batch_size: int = 128) -> torch.Tensor:
    """f(embedded_inputs(objects, canvas, size, y, x)) for every placement (size, y, x): (P, N, K)."""
    return torch.stack([embedded_probs(model, objects, canvas, s, y, x, batch_size) for s, y, x in placements])


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


def agreement(model: nn.Module, x: torch.Tensor, kind: str = "roll", max_shift: int = 4,
              seed: int = 0, batch_size: int = 128) -> torch.Tensor:
    """Per image 1[argmax f(shift_a x) == argmax f(shift_b x)], a, b ~ U{-m..m}^2 drawn per image from seed."""
    g = torch.Generator().manual_seed(seed)
    a, b = sh.random_offsets(len(x), max_shift, g), sh.random_offsets(len(x), max_shift, g)
    pred_a = predict_logits(model, sh.shift(x, *a, kind), batch_size).argmax(1)
    pred_b = predict_logits(model, sh.shift(x, *b, kind), batch_size).argmax(1)
    return pred_a == pred_b


def consistency(model: nn.Module, x: torch.Tensor, kind: str = "roll", max_shift: int = 4,
                seed: int = 0, batch_size: int = 128) -> float:
    """Zhang consistency: P[argmax f(shift_a x) == argmax f(shift_b x)], a, b ~ U{-m..m}^2 drawn per image."""
    return agreement(model, x, kind, max_shift, seed, batch_size).float().mean().item()


@torch.no_grad()
def diagonal_path_outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_shift: int,
                          kind: str = "roll", batch_size: int = 128) -> dict[str, torch.Tensor]:
    """For d = 0..max_shift: f_y(shift_{(d,d)} x), the probability of the true class, and the prediction.
    Returns (N, max_shift + 1) tensors 'p_true' and 'pred' (Zhang's diagonal-shift curves)."""
    p_true, pred = [], []
    for d in range(max_shift + 1):
        probs = predict_probs(model, sh.shift(x, d, d, kind), batch_size)
        p_true.append(probs.gather(1, y[:, None]).squeeze(1))
        pred.append(probs.argmax(1))
    return {"p_true": torch.stack(p_true, 1), "pred": torch.stack(pred, 1)}


def flips_per_image(preds: torch.Tensor) -> torch.Tensor:
    """Per sequence of (N, J) predictions: mean over j = 2..J of 1[y_j != y_(j-1)]."""
    return (preds[:, 1:] != preds[:, :-1]).float().mean(1)


def period_gap(curves: torch.Tensor, step: int) -> float:
    """max_{n, d} |c_n(d + step) - c_n(d)| over (N, D) curves: zero when every curve repeats with period `step`."""
    return (curves[:, step:] - curves[:, :-step]).abs().max().item()


def flip_rate(preds: torch.Tensor) -> float:
    """Frame-to-frame flip rate of (N, J) predictions along sequences: mean 1[y_j != y_(j-1)], j = 2..J."""
    return flips_per_image(preds).mean().item()


@torch.no_grad()
def sequence_predictions(model: nn.Module, x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                         kind: str = "crop", batch_size: int = 128) -> torch.Tensor:
    """Predictions (N, J) on the frames shift(x, dy[:, j], dx[:, j]) of one sequence per image."""
    return torch.stack([predict_logits(model, sh.shift(x, dy[:, j], dx[:, j], kind), batch_size).argmax(1)
                        for j in range(dy.shape[1])], 1)


def shift_grid(period: int) -> list[tuple[int, int]]:
    """All shifts (dy, dx) in {0..period-1}^2, row-major."""
    return [(dy, dx) for dy in range(period) for dx in range(period)]


@torch.no_grad()
def output_change_grid(model: nn.Module, x: torch.Tensor, period: int,
                       batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Per circular shift (dy, dx) in {0..P-1}^2: mean ||z(roll x) - z(x)|| / ||z(x)|| of the logits z,
    and P[argmax changes]. Returns (P, P) grids 'logit_change' and 'p_change'."""
    ref = predict_logits(model, x, batch_size)
    change = torch.zeros(period, period)
    flips = torch.zeros(period, period)
    for dy, dx in shift_grid(period):
        z = predict_logits(model, sh.roll(x, dy, dx), batch_size)
        change[dy, dx] = ((z - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-12)).mean()
        flips[dy, dx] = (z.argmax(1) != ref.argmax(1)).float().mean()
    return {"logit_change": change, "p_change": flips}


@torch.no_grad()
def shift_grid_correct(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, period: int) -> torch.Tensor:
    """1[ŷ(roll(x, d)) == y] for every circular shift d in {0..P-1}², row-major: (P², N). Its all()
    over shifts is correctness against an adversary who picks the shift per image (worst-case accuracy)."""
    return torch.stack([predict_logits(model, sh.roll(x, dy, dx)).argmax(1) == labels for dy, dx in shift_grid(period)])


@torch.no_grad()
def fractional_shift_predictions(model: nn.Module, x: torch.Tensor, offsets: list[tuple[float, float]]) -> torch.Tensor:
    """ŷ(T_t x) for every offset t = (ty, tx) px, T = band-limited circular shift (``fourier_shift``,
    fractions allowed; an integer offset is exactly a roll): (len(offsets), N)."""
    spectrum = torch.fft.rfft2(x)
    return torch.stack([predict_logits(model, fourier_shift(x, ty, tx, spectrum)).argmax(1) for ty, tx in offsets])


def tile_periodic(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Tile a (P, P) grid of a quantity periodic in the shift to (size, size)."""
    reps = -(-size // grid.shape[-1])
    return grid.repeat(reps, reps)[:size, :size]


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


def fourier_shift_distance(f: torch.Tensor, ref: torch.Tensor, stride: int, dy: int, dx: int,
                           ref_spectrum: torch.Tensor | None = None) -> torch.Tensor:
    """Per image 1 - cos(f, T ref), T = band-limited shift by (dy, dx) / stride cells: f = F_l(roll(x, d)),
    ref = F_l(x). Zero for an equivariant layer on its lattice, and for an alias-free (band-limited) map
    at every shift, so what remains off the lattice is aliasing, not the map's lack of smoothness."""
    moved = fourier_shift(ref, dy / stride, dx / stride, ref_spectrum)
    return (1 - F.cosine_similarity(f.flatten(1), moved.flatten(1), dim=1, eps=1e-12)).clamp_min(0.0)


@torch.no_grad()
def feature_distance_grid(model: nn.Module, x: torch.Tensor, period: int) -> dict[str, torch.Tensor]:
    """Per layer l and circular shift D in {0..P-1}^2: mean over images of the cosine distance
    1 - cos(F_l(roll(x, D)), T_{D/s_l} F_l(x)), T = band-limited shift (``fourier_shift_distance``).
    Zero at every D that is a multiple of layer l's stride s_l when the net is circular-padded."""
    model.eval()
    device = next(model.parameters()).device
    size = x.shape[-1]
    x = x.to(device)
    ref = model.forward_features(x)
    spectra = [torch.fft.rfft2(r) for _, r in ref]
    grids = {name: torch.zeros(period, period) for name, _ in ref}
    for dy, dx in shift_grid(period):
        moved = model.forward_features(sh.roll(x, dy, dx))
        for (name, r), (_, f), spectrum in zip(ref, moved, spectra, strict=True):
            d = fourier_shift_distance(f, r, size // f.shape[-1], dy, dx, spectrum)
            grids[name][dy, dx] = d.mean().item()
    return grids


def layer_strides(model: nn.Module, size: int) -> dict[str, int]:
    """The stride of every named layer's output relative to a size x size input."""
    with torch.no_grad():
        device = next(model.parameters()).device
        model.eval()
        feats = model.forward_features(torch.zeros(1, model.cfg.in_channels, size, size, device=device))
    return {name: size // f.shape[-1] for name, f in feats}


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
