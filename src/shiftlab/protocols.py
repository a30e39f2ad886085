"""The summaries chapters compute from their runs, in one place: tidy records in, numbers out.

A *run* is one trained network measured once: a record (dict or DataFrame row) naming its arm
(e.g. filter size, padding, augmentation), its seed, and its measurements.
"""
from __future__ import annotations

import pandas as pd
import torch

from . import metrics


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


def conditional_rate(event: torch.Tensor, given: torch.Tensor) -> float:
    """P[event | given] over images: mean of event where given is true (NaN if given never is)."""
    given = given.bool()
    return event[given].float().mean().item() if given.any() else float("nan")


def mosaic(items: torch.Tensor) -> torch.Tensor:
    """Each item (N, C, s, s) at the centre of a 3 x 3 mosaic of items: (N, C, 3s, 3s); the 8 neighbours
    of item i are items i+1..i+8 (mod N), row-major around it, so a moving window always sees real content."""
    n = len(items)
    offsets = [1, 2, 3, 4, 0, 5, 6, 7, 8]  # row-major tiles; 0 is the centre
    tiles = [items[(torch.arange(n) + o) % n] for o in offsets]
    return torch.cat([torch.cat(tiles[r * 3:r * 3 + 3], -1) for r in range(3)], -2)


def crop_window(frames: torch.Tensor, size: int, dy: int, dx: int) -> torch.Tensor:
    """The size x size window of (N, C, H, W) frames centred on the frame's centre and moved by (dy, dx)."""
    h, w = frames.shape[-2:]
    top, left = (h - size) // 2 + dy, (w - size) // 2 + dx
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"a {size}px window moved by ({dy}, {dx}) leaves the {h}x{w} frame")
    return frames[..., top:top + size, left:left + size]


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


def shift_consistency(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, max_shift: int,
                      seed: int) -> dict[str, torch.Tensor]:
    """Per image: correct (argmax f(x) == y), and agreement under circular and under crop shifts
    (1[ŷ(shift_a x) == ŷ(shift_b x)], offsets a, b ~ U{-max_shift..max_shift}² drawn with seed)."""
    return {"correct": metrics.predict_logits(model, x).argmax(1) == labels,
            "agree circular": metrics.agreement(model, x, "roll", max_shift, seed),
            "agree crop": metrics.agreement(model, x, "crop", max_shift, seed)}


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
        metrics.predict_logits(model, x)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, parts in batches.items():
        norms = torch.cat(parts)
        top = norms.topk(2, dim=1).values
        out[name] = {"phase": norms.argmax(1), "norm": top[:, 0], "margin": top[:, 0] - top[:, 1]}
    return out
