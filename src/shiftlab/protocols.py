"""The experiments' procedures, in one place: every function that runs a model over shifts, positions or frames
(consistency under random offsets, diagonal paths, S x S output grids, fractional shifts, feature distances, objects
embedded on a canvas, sequences, APS's phase margins), and the summaries chapters compute from their runs.

A *run* is one trained network measured once: a record (dict or DataFrame row) naming its arm
(e.g. filter size, padding, augmentation), its seed, and its measurements.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from . import inference, metrics
from . import shifts as sh
from .data import embed, resize


def select(runs: pd.DataFrame, **arm) -> pd.DataFrame:
    """The runs whose columns equal every value of arm (e.g. select(runs, filter=5, padding="zeros"))."""
    unknown = set(arm) - set(runs.columns)
    if unknown:
        raise KeyError(f"no column {sorted(unknown)} in the runs; valid: {', '.join(runs.columns)}")
    mask = pd.Series(True, index=runs.index)
    for column, value in arm.items():
        mask &= runs[column] == value
    return runs[mask]


def seed_differences(runs: pd.DataFrame, measure: str, b: dict, a: dict) -> list[float]:
    """Per seed s, in seed order: measure(arm b, s) - measure(arm a, s); both arms must have the same seeds."""
    rb, ra = select(runs, **b).set_index("seed")[measure], select(runs, **a).set_index("seed")[measure]
    if sorted(rb.index) != sorted(ra.index) or rb.index.has_duplicates or len(rb) == 0:
        raise ValueError(f"arms {b} and {a} must have the same seeds, once each; "
                         f"got {list(rb.index)} and {list(ra.index)}")
    return [float(rb[s] - ra[s]) for s in sorted(rb.index)]


def seed_smallest_steps(runs: pd.DataFrame, measure: str, x: str, arms: dict) -> list[float]:
    """Per seed s, in seed order: the smallest rise of measure between consecutive levels of column x over the runs of
    that seed that match arms, min_k (y_(k+1) - y_k) (positive only when it rises at every step; with three equally
    spaced levels a least-squares slope would be the ends' difference alone); every seed must have the same, at
    least two, levels of x, once each."""
    sel = select(runs, **arms)
    levels = {s: list(g.sort_values(x)[x]) for s, g in sel.groupby("seed")}
    first = next(iter(levels.values()), [])
    if len({tuple(v) for v in levels.values()}) != 1 or len(set(first)) < 2 or len(set(first)) != len(first):
        raise ValueError(f"every seed needs the same levels of {x!r}, at least two, once each; got {levels}")
    return [float(sel[sel["seed"] == s].sort_values(x)[measure].diff().iloc[1:].min()) for s in sorted(levels)]


def per_seed(effect, seeds) -> list[float]:
    """[mean of effect(s) for s in seeds]: a claim's per-seed effects from a function giving, for seed s, one value
    per image of that seed's test set (a tensor or array)."""
    return [float(torch.as_tensor(effect(s), dtype=torch.float64).mean()) for s in seeds]


def conditional_rate(event: torch.Tensor, given: torch.Tensor) -> float:
    """P[event | given] over images: mean of event where given is true (NaN if given never is)."""
    given = given.bool()
    return event[given].float().mean().item() if given.any() else float("nan")


def consecutive_pair_changes(logits: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Per image, the fraction of consecutive transformations (k, k+1) of (T, N, K) logits, both usable (a (T,) mask),
    whose top-1 classes differ: mean over such k of 1[argmax z_k != argmax z_(k+1)], (N,). Both images of a pair are
    transformed (e.g. resampled), so neither is the untouched original."""
    usable = torch.as_tensor(usable, dtype=torch.bool)
    if usable.shape != logits.shape[:1]:
        raise ValueError(f"usable has shape {tuple(usable.shape)}; valid: one flag per transformation, "
                         f"({logits.shape[0]},)")
    pairs = (usable[:-1] & usable[1:]).nonzero().flatten()
    if not len(pairs):
        raise ValueError("no two consecutive transformations are both usable; valid: a mask with two neighbours set")
    top = logits.argmax(-1)
    return (top[pairs] != top[pairs + 1]).float().mean(0)


def diagonal_pair_changes(probs: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Azulay's pair pooling. probs[c] = f(T_(c,c) x), (N, K), for consecutive offsets c; per image the
    mean over the pairs (c, c+1) of 1[argmax changes] ('P(top-1 change)') and of |f_k(T_c x) - f_k(T_(c+1) x)|,
    k = argmax f(T_c x) ('MAC')."""
    cs = sorted(probs)
    if cs != list(range(cs[0], cs[-1] + 1)) or len(cs) < 2:
        raise ValueError(f"offsets must be consecutive integers, at least two; got {cs}")
    pairs = [(probs[c], probs[c + 1]) for c in cs[:-1]]
    return {"P(top-1 change)": torch.stack([metrics.top1_changed(a, b).float() for a, b in pairs], 1).mean(1),
            "MAC": torch.stack([metrics.absolute_change(a, b) for a, b in pairs], 1).mean(1)}


def near_far(per_position: torch.Tensor, distance: torch.Tensor, near: float,
             far: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the mean of a (P, Q, N) per-position measurement over positions at distance <= near
    and over those at distance >= far (distance: (P, Q))."""
    flat, d = per_position.flatten(0, 1).float(), distance.flatten()
    if not (d <= near).any() or not (d >= far).any():
        raise ValueError(f"no position is within {near} or beyond {far} of the centre; "
                         f"distances span {d.min()}..{d.max()}")
    return flat[d <= near].mean(0), flat[d >= far].mean(0)


def shift_consistency(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor, max_shift: int,
                      seed: int) -> dict[str, torch.Tensor]:
    """Per image of the mosaic frames (``data.mosaic_frames``), x its centred 32-px window: correct (argmax f(x) ==
    y), and agreement 1[ŷ(shift_a x) == ŷ(shift_b x)], offsets a, b ~ U{-max_shift..max_shift}² drawn with seed,
    under circular shifts of x and under crops (the window moved over the frame: Zhang's two random crops); the
    accuracy at those shifts, (1[ŷ(shift_a x) == y] + 1[ŷ(shift_b x) == y]) / 2 per image; and whether the pair's
    difference is off the lattice of multiples of half the model's total stride S/2 (``off_lattice``)."""
    x = sh.window(frames, 0, 0)
    step = max(getattr(getattr(model, "cfg", None), "total_stride", 2) // 2, 1)
    out = {"correct": inference.predict_logits(model, x).argmax(1) == labels}
    for name, images, kind in (("circular", x, "roll"), ("crop", frames, "window")):
        pred_a, pred_b = shifted_predictions(model, images, kind, max_shift, seed)
        out[f"agree {name}"] = pred_a == pred_b
        out[f"accuracy {name}"] = ((pred_a == labels).float() + (pred_b == labels).float()) / 2
    return {**out, "off lattice": off_lattice(*pair_offsets(len(x), max_shift, seed), step)}


def aps_phase_margins(model: torch.nn.Module, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """For every ApsPool layer (by its module name), per image: the phase it keeps, the largest component norm and
    its margin over the second largest (0 = a tie, decided by the first-phase rule). The norms are computed from
    each layer's input, Max_{2,1} first inside a MaxApsPool."""
    from .layers import ApsPool, MaxApsPool

    batches: dict[str, list[torch.Tensor]] = {}

    def record(name, norms_of):
        def hook(_layer, inputs):
            batches.setdefault(name, []).append(norms_of(inputs[0].detach()).cpu())
        return hook

    inside = {f"{name}.1" for name, layer in model.named_modules() if isinstance(layer, MaxApsPool)}
    hooks = []
    for name, layer in model.named_modules():
        if isinstance(layer, MaxApsPool):
            hooks.append(layer.register_forward_pre_hook(
                record(f"{name}.1", lambda z, dense=layer[0], pool=layer[1]: pool.phase_norms(dense(z)))))
        elif isinstance(layer, ApsPool) and name not in inside:
            hooks.append(layer.register_forward_pre_hook(record(name, layer.phase_norms)))
    try:
        inference.predict_logits(model, x)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, parts in batches.items():
        norms = torch.cat(parts)
        top = norms.topk(2, dim=1).values
        out[name] = {"phase": norms.argmax(1), "norm": top[:, 0], "margin": top[:, 0] - top[:, 1]}
    return out


def embedded_inputs(objects: torch.Tensor, canvas: int, size: int, y: int, x: int) -> torch.Tensor:
    """embed(resize(o, size), canvas, (y, x)) for every object o: each resized to size x size px and
    placed with its top-left corner at (y, x) on a black canvas x canvas image."""
    n = len(objects)
    return embed(resize(objects, size), canvas, torch.full((n,), y), torch.full((n,), x))


def embedded_probs(model: nn.Module, objects: torch.Tensor, canvas: int, size: int, y: int, x: int,
                   batch_size: int = 128) -> torch.Tensor:
    """f(embedded_inputs(objects, canvas, size, y, x)): (N, K) softmax outputs on the placed objects."""
    return inference.predict_probs(model, embedded_inputs(objects, canvas, size, y, x), batch_size)


def embedded_probs_at(model: nn.Module, objects: torch.Tensor, canvas: int,
                      placements: list[tuple[int, int, int]], batch_size: int = 128) -> torch.Tensor:
    """f(embedded_inputs(objects, canvas, size, y, x)) for every placement (size, y, x): (P, N, K)."""
    return torch.stack([embedded_probs(model, objects, canvas, s, y, x, batch_size) for s, y, x in placements])


def pair_offsets(n: int, max_shift: int, seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """The two offsets a, b ~ U{-m..m}^2 per image that ``agreement`` draws from seed: ((a_y, a_x), (b_y, b_x))."""
    g = torch.Generator().manual_seed(seed)
    return sh.random_offsets(n, max_shift, g), sh.random_offsets(n, max_shift, g)


def off_lattice(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor], step: int) -> torch.Tensor:
    """Per image: whether the two offsets differ by a move off the lattice of multiples of step (in either
    coordinate), where a blurred network with circular padding is not exactly invariant (chapter 7)."""
    return ((a[0] - b[0]) % step != 0) | ((a[1] - b[1]) % step != 0)


def shifted_predictions(model: nn.Module, x: torch.Tensor, kind: str = "roll", max_shift: int = 4, seed: int = 0,
                        batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (argmax f(shift_a x), argmax f(shift_b x)), a, b ~ U{-m..m}^2 drawn per image from seed
    (``pair_offsets``)."""
    a, b = pair_offsets(len(x), max_shift, seed)
    return (inference.predict_logits(model, sh.shift(x, *a, kind), batch_size).argmax(1),
            inference.predict_logits(model, sh.shift(x, *b, kind), batch_size).argmax(1))


def agreement(model: nn.Module, x: torch.Tensor, kind: str = "roll", max_shift: int = 4,
              seed: int = 0, batch_size: int = 128) -> torch.Tensor:
    """Per image 1[argmax f(shift_a x) == argmax f(shift_b x)], a, b ~ U{-m..m}^2 drawn per image from seed
    (``shifted_predictions``)."""
    pred_a, pred_b = shifted_predictions(model, x, kind, max_shift, seed, batch_size)
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
        probs = inference.predict_probs(model, sh.shift(x, d, d, kind), batch_size)
        p_true.append(probs.gather(1, y[:, None]).squeeze(1))
        pred.append(probs.argmax(1))
    return {"p_true": torch.stack(p_true, 1), "pred": torch.stack(pred, 1)}


@torch.no_grad()
def sequence_predictions(model: nn.Module, x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                         kind: str = "crop", batch_size: int = 128) -> torch.Tensor:
    """Predictions (N, J) on the frames shift(x, dy[:, j], dx[:, j]) of one sequence per image."""
    return torch.stack([inference.predict_logits(model, sh.shift(x, dy[:, j], dx[:, j], kind), batch_size).argmax(1)
                        for j in range(dy.shape[1])], 1)


@torch.no_grad()
def output_change_grid(model: nn.Module, x: torch.Tensor, period: int,
                       batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Per circular shift (dy, dx) in {0..P-1}^2: mean ||z(roll x) - z(x)|| / ||z(x)|| of the logits z,
    and P[argmax changes]. Returns (P, P) grids 'logit_change' and 'p_change'."""
    ref = inference.predict_logits(model, x, batch_size)
    change = torch.zeros(period, period)
    flips = torch.zeros(period, period)
    for dy, dx in metrics.shift_grid(period):
        z = inference.predict_logits(model, sh.roll(x, dy, dx), batch_size)
        change[dy, dx] = ((z - ref).norm(dim=1) / ref.norm(dim=1).clamp_min(1e-12)).mean()
        flips[dy, dx] = (z.argmax(1) != ref.argmax(1)).float().mean()
    return {"logit_change": change, "p_change": flips}


@torch.no_grad()
def shift_grid_correct(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, period: int) -> torch.Tensor:
    """1[ŷ(roll(x, d)) == y] for every circular shift d in {0..P-1}², row-major: (P², N). Its all()
    over shifts is correctness against an adversary who picks the shift per image (worst-case accuracy)."""
    return torch.stack([inference.predict_logits(model, sh.roll(x, dy, dx)).argmax(1) == labels
                        for dy, dx in metrics.shift_grid(period)])


@torch.no_grad()
def fractional_shift_predictions(model: nn.Module, x: torch.Tensor, offsets: list[tuple[float, float]]) -> torch.Tensor:
    """ŷ(T_t x) for every offset t = (ty, tx) px, T = band-limited circular shift (``fourier_shift``,
    fractions allowed; an integer offset is exactly a roll): (len(offsets), N)."""
    spectrum = torch.fft.rfft2(x)
    return torch.stack([inference.predict_logits(model, sh.fourier_shift(x, ty, tx, spectrum)).argmax(1)
                        for ty, tx in offsets])


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
    for dy, dx in metrics.shift_grid(period):
        moved = model.forward_features(sh.roll(x, dy, dx))
        for (name, r), (_, f), spectrum in zip(ref, moved, spectra, strict=True):
            d = metrics.fourier_shift_distance(f, r, size // f.shape[-1], dy, dx, spectrum)
            grids[name][dy, dx] = d.mean().item()
    return grids


def layer_strides(model: nn.Module, size: int) -> dict[str, int]:
    """The stride of every named layer's output relative to a size x size input."""
    with torch.no_grad():
        device = next(model.parameters()).device
        model.eval()
        feats = model.forward_features(torch.zeros(1, model.cfg.in_channels, size, size, device=device))
    return {name: size // f.shape[-1] for name, f in feats}
