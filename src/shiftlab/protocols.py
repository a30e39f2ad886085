"""The summaries chapters compute from their runs, in one place: tidy records in, numbers out.

A *run* is one trained network measured once: a record (dict or DataFrame row) naming its arm
(e.g. filter size, padding, augmentation), its seed, and its measurements.
"""
from __future__ import annotations

import pandas as pd
import torch


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
        raise ValueError(f"arms {b} and {a} must have the same seeds, once each; got {list(rb.index)} and {list(ra.index)}")
    return [float(rb[s] - ra[s]) for s in sorted(rb.index)]


def conditional_rate(event: torch.Tensor, given: torch.Tensor) -> float:
    """P[event | given] over images: mean of event where given is true (NaN if given never is)."""
    given = given.bool()
    return event[given].float().mean().item() if given.any() else float("nan")
