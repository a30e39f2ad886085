"""Run summaries: seed pairing and conditional rates on hand-computed cases."""
import math

import pandas as pd
import pytest
import torch

from shiftlab import protocols

RUNS = pd.DataFrame([
    {"filter": 1, "padding": "circular", "seed": 0, "acc": 0.90},
    {"filter": 1, "padding": "circular", "seed": 1, "acc": 0.91},
    {"filter": 5, "padding": "circular", "seed": 1, "acc": 0.95},
    {"filter": 5, "padding": "circular", "seed": 0, "acc": 0.92},
    {"filter": 5, "padding": "zeros", "seed": 0, "acc": 0.80},
])


def test_seed_differences_pair_by_seed_not_by_row_order():
    d = protocols.seed_differences(RUNS, "acc", {"filter": 5, "padding": "circular"}, {"filter": 1, "padding": "circular"})
    assert d == pytest.approx([0.02, 0.04])


def test_arms_with_different_seeds_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        protocols.seed_differences(RUNS, "acc", {"padding": "zeros"}, {"filter": 1})
    with pytest.raises(ValueError, match="same seeds"):
        protocols.seed_differences(RUNS, "acc", {"filter": 5}, {"filter": 1})  # seed 0 twice in arm b


def test_select_names_valid_columns():
    assert len(protocols.select(RUNS, filter=5)) == 3
    with pytest.raises(KeyError, match="valid: filter, padding, seed, acc"):
        protocols.select(RUNS, filt=5)


def test_conditional_rate_by_hand():
    event = torch.tensor([True, False, True, True])
    assert protocols.conditional_rate(event, torch.tensor([True, True, False, False])) == 0.5
    assert math.isnan(protocols.conditional_rate(event, torch.zeros(4, dtype=torch.bool)))
