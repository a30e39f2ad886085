"""Run summaries: seed pairing and conditional rates on hand-computed cases."""
import math

import pandas as pd
import pytest
import torch

from shiftlab import data, protocols

RUNS = pd.DataFrame([
    {"filter": 1, "padding": "circular", "seed": 0, "acc": 0.90},
    {"filter": 1, "padding": "circular", "seed": 1, "acc": 0.91},
    {"filter": 5, "padding": "circular", "seed": 1, "acc": 0.95},
    {"filter": 5, "padding": "circular", "seed": 0, "acc": 0.92},
    {"filter": 5, "padding": "zeros", "seed": 0, "acc": 0.80},
])


def test_seed_differences_pair_by_seed_not_by_row_order():
    d = protocols.seed_differences(RUNS, "acc", {"filter": 5, "padding": "circular"},
                                   {"filter": 1, "padding": "circular"})
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


def test_mosaic_puts_each_item_at_the_centre_among_its_successors():
    items = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 2, 2)
    m = data.mosaic(items)
    assert m.shape == (10, 1, 6, 6)
    assert m[3, 0, ::2, ::2].tolist() == [[4, 5, 6], [7, 3, 8], [9, 0, 1]]
    assert m[9, 0, ::2, ::2].tolist() == [[0, 1, 2], [3, 9, 4], [5, 6, 7]]


def test_diagonal_pair_changes_by_hand():
    p = {0: torch.tensor([[0.7, 0.3], [0.4, 0.6]]), 1: torch.tensor([[0.6, 0.4], [0.6, 0.4]]),
         2: torch.tensor([[0.2, 0.8], [0.5, 0.5]])}
    out = protocols.diagonal_pair_changes(p)
    assert out["P(top-1 change)"].tolist() == [0.5, 0.5]   # image 0 flips at 1->2, image 1 at 0->1
    assert out["MAC"].tolist() == pytest.approx([(0.1 + 0.4) / 2, (0.2 + 0.1) / 2])
    with pytest.raises(ValueError, match="consecutive"):
        protocols.diagonal_pair_changes({0: p[0], 2: p[2]})


def test_near_far_by_hand():
    values = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])  # (2, 2) positions x 2 images
    distance = torch.tensor([[0, 5], [10, 20]])
    near, far = protocols.near_far(values, distance, near=0, far=10)
    assert near.tolist() == [1.0, 0.0] and far.tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="no position"):
        protocols.near_far(values, distance, near=0, far=30)


def test_consecutive_pair_changes_counts_only_pairs_of_usable_neighbours():
    top = torch.tensor([[0, 0], [1, 0], [1, 1], [2, 1], [2, 1]])           # (T=5, N=2) top-1 classes
    logits = torch.nn.functional.one_hot(top, 3).float()
    usable = torch.tensor([False, True, True, True, False])                 # pairs (1, 2) and (2, 3)
    assert protocols.consecutive_pair_changes(logits, usable).tolist() == [0.5, 0.5]
    assert protocols.consecutive_pair_changes(logits, torch.ones(5, dtype=torch.bool)).tolist() == [0.5, 0.25]
    with pytest.raises(ValueError, match="both usable"):
        protocols.consecutive_pair_changes(logits, torch.tensor([True, False, True, False, True]))
    with pytest.raises(ValueError, match="one flag per transformation"):
        protocols.consecutive_pair_changes(logits, torch.ones(4, dtype=torch.bool))


def test_seed_smallest_steps_is_the_smaller_rise_per_seed():
    rise = {0: (0.50, 0.60, 0.62), 1: (0.50, 0.49, 0.70)}                 # seed 1 dips at the middle size
    runs = pd.DataFrame([{"seed": s, "m": m, "pad": "circular", "c": c} for s, cs in rise.items()
                         for m, c in zip((5, 1, 3), (cs[2], cs[0], cs[1]), strict=True)]   # rows in any order
                        + [{"seed": s, "m": 1, "pad": "zeros", "c": 9.0} for s in (0, 1)])
    assert protocols.seed_smallest_steps(runs, "c", "m", {"pad": "circular"}) == pytest.approx([0.02, -0.01])
    with pytest.raises(ValueError, match="at least two"):
        protocols.seed_smallest_steps(runs, "c", "m", {"pad": "zeros"})
