"""scripts/convergence.py: the distance of the book's budget from the longest run, per network and seed, and its
table."""
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def convergence():
    return load_script("convergence")


def accuracy(baseline_gaps: tuple[float, float], canvas_gaps: tuple[float, float]) -> dict:
    """Accuracies at 4 and 8 epochs, seeds 0 and 1, whose 8-epoch run is that many points above the 4-epoch one."""
    def net(gap0: float, gap1: float) -> dict:
        return {0: {4: 90.0, 8: 90.0 + gap0}, 1: {4: 89.5, 8: 89.5 + gap1}}
    return {"baseline": net(*baseline_gaps), "maxblur5": net(0.25, 0.5), "canvas_vgg": net(*canvas_gaps)}


def test_gaps_are_per_network_and_seed(convergence):
    gaps = convergence.gaps(accuracy((0.75, 0.5), (1.5, 1.25)), budget=4)
    assert gaps["baseline"] == pytest.approx({0: 0.75, 1: 0.5})
    assert gaps["canvas_vgg"] == pytest.approx({0: 1.5, 1: 1.25})


def test_table_has_a_row_per_network_and_seed_and_says_which_miss_the_rule(convergence):
    text = convergence.markdown(accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "network" not in line and "---" not in line]
    assert len(rows) == 6
    assert "| MaxPool | 1 | 89.50 | 90.00 |" in rows
    assert "seeds 0, 1" in text
    assert "MaxPool 0.75 (seed 0), 0.50 (seed 1) points (within 1 point)" in text
    assert "1.50 (seed 0), 0.50 (seed 1) points (more than 1 point at some seeds)" in text


def test_one_seed_reads_as_before(convergence):
    acc = {name: {0: per_seed[0]} for name, per_seed in accuracy((0.75, 0.5), (1.5, 1.5)).items()}
    text = convergence.markdown(acc, budget=4)
    assert "seed 0:" in text and "MaxPool 0.75 points (within 1 point)" in text
    assert "1.50 points (more than 1 point)" in text
