#!/usr/bin/env python
"""Test accuracy vs training epochs: the measurement behind the book profile's training budget.

    python scripts/convergence.py [--epochs 1 2 4 8] [--budget 4] [--seed 0]

Trains (or loads from the model cache) the MaxPool baseline and the MaxBlurPool filter-5 network
on the full 60k Fashion-MNIST training images for each number of epochs (each run has its own
one-cycle schedule, as the book's models do), evaluates each on the 10k test images, and writes
results/convergence.json and the table book/convergence.md that book/reproducing.md includes.
The budget passes when the baseline at --budget epochs is within 1 point of its longest run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import data, metrics, zoo  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

NETWORKS = {"baseline": "MaxPool", "maxblur5": "MaxBlurPool, filter 5"}
N_TRAIN = 60000


def measure(epochs: list[int], seed: int, cache_dir: Path) -> dict[str, dict[int, float]]:
    """Test accuracy (%) of each network after each number of epochs."""
    for e in epochs:
        zoo.ensure([(name, seed) for name in NETWORKS], n_train=N_TRAIN, epochs=e, cache_dir=cache_dir)
    test = data.load("fashion_mnist", "test")
    x = test.as_float(32)
    return {name: {e: 100 * metrics.accuracy(metrics.predict_logits(
        zoo.get(name, n_train=N_TRAIN, epochs=e, seed=seed, cache_dir=cache_dir, progress=False)[0], x), test.labels)
        for e in epochs} for name in NETWORKS}


def markdown(acc: dict[str, dict[int, float]], budget: int, seed: int) -> str:
    """The accuracy-vs-epochs table and the budget's distance from the longest run."""
    epochs = sorted(next(iter(acc.values())))
    longest = epochs[-1]
    lines = ["| network | " + " | ".join(f"{e} epoch{'s' * (e > 1)}" for e in epochs) + " |",
             "| --- |" + " --- |" * len(epochs)]
    lines += [f"| {NETWORKS[n]} | " + " | ".join(f"{a[e]:.2f}" for e in epochs) + " |" for n, a in acc.items()]
    gap = acc["baseline"][longest] - acc["baseline"][budget]
    return ("<!-- written by scripts/convergence.py; do not edit -->\n"
            f"Test accuracy (%) on the 10,000 Fashion-MNIST test images after training on all 60,000 "
            f"training images, seed {seed}:\n\n" + "\n".join(lines) +
            f"\n\nThe book trains {budget} epochs: the MaxPool baseline is {gap:.2f} points below its "
            f"{longest}-epoch accuracy ({'within' if gap <= 1 else 'more than'} 1 point).\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "cache")
    args = ap.parse_args()
    if args.budget not in args.epochs:
        ap.error(f"--budget {args.budget} must be one of --epochs {args.epochs}")
    acc = measure(sorted(args.epochs), args.seed, args.cache)
    atomic_write_bytes(ROOT / "results" / "convergence.json",
                       json.dumps({"seed": args.seed, "n_train": N_TRAIN, "accuracy": acc}, indent=2).encode())
    text = markdown(acc, args.budget, args.seed)
    atomic_write_bytes(ROOT / "book" / "convergence.md", text.encode())
    print(text)
    longest = max(args.epochs)
    return 0 if acc["baseline"][longest] - acc["baseline"][args.budget] <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
