#!/usr/bin/env python
"""Test accuracy vs training epochs: the measurement behind the book profile's training budget.

    python scripts/convergence.py [--epochs 1 2 4 8] [--budget 4] [--seeds 0 1]

Trains (or loads from the model cache) the MaxPool baseline, the MaxBlurPool filter-5 and the APS networks on the book
profile's n_train Fashion-MNIST training images, and the canvas VGG-like of Part I on its canvas images, for
each number of epochs (each run has its own one-cycle schedule, as the book's models do), evaluates each on
the 10k test images (the canvas network on test items placed as in its training), for each seed, and writes
results/convergence.json and the table book/convergence.md that book/reproducing.md includes.
The budget passes when every network at --budget epochs is within 1 point of its longest run, at every seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from shiftlab import data, inference, metrics, params, runtime, zoo  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

NETWORKS = {"baseline": "MaxPool", "maxblur5": "MaxBlurPool, filter 5", "aps": "APS",
            "canvas_vgg": f"VGG-like on the {zoo.CANVAS}-px canvas ({zoo.CANVAS_TRAIN // 1000}k images)"}
N_TRAIN = params.load_profile("book", ROOT / "params")["common"]["n_train"]   # the book's training images
RULE = 1       # point: the budget passes within this distance of the longest run


def test_inputs(name: str, test: data.Split, seed: int) -> torch.Tensor:
    """The test images as the network saw its training images: padded to 32 px, or placed on its canvas."""
    canvas = zoo.ENTRIES[name].canvas
    if canvas is None:
        return test.as_float(32)
    return data.place_on_canvas(test.as_float(), canvas, torch.Generator().manual_seed(seed))


Accuracy = dict[str, dict[int, dict[int, float]]]     # network -> seed -> epochs -> test accuracy (%)


def measure(epochs: list[int], seeds: list[int], cache_dir: Path) -> Accuracy:
    """Test accuracy (%) of each network after each number of epochs, at each seed."""
    for e in epochs:
        zoo.ensure([(name, seed) for seed in seeds for name in NETWORKS], n_train=N_TRAIN, epochs=e,
                   cache_dir=cache_dir)
    test = data.load("fashion_mnist", "test")

    def accuracy(name: str, e: int, seed: int) -> float:
        net = zoo.get(name, n_train=N_TRAIN, epochs=e, seed=seed, cache_dir=cache_dir, progress=False)[0]
        return 100 * metrics.accuracy(inference.predict_logits(net, test_inputs(name, test, seed)), test.labels)

    return {name: {seed: {e: accuracy(name, e, seed) for e in epochs} for seed in seeds} for name in NETWORKS}


def gaps(acc: Accuracy, budget: int) -> dict[str, dict[int, float]]:
    """Per network and seed: points below the longest run's accuracy at the budget (acc[max] - acc[budget])."""
    return {name: {seed: a[max(a)] - a[budget] for seed, a in per_seed.items()} for name, per_seed in acc.items()}


def markdown(acc: Accuracy, budget: int) -> str:
    """The accuracy-vs-epochs table (a row per network and seed) and each run's distance from its longest run."""
    seeds = sorted(next(iter(acc.values())))
    epochs = sorted(next(iter(next(iter(acc.values())).values())))
    longest = epochs[-1]
    lines = ["| network | seed | " + " | ".join(f"{e} epoch{'s' * (e > 1)}" for e in epochs) + " |",
             "| --- | --- |" + " --- |" * len(epochs)]
    lines += [f"| {NETWORKS[n]} | {seed} | " + " | ".join(f"{a[e]:.2f}" for e in epochs) + " |"
              for n, per_seed in acc.items() for seed, a in per_seed.items()]

    def below(g: dict[int, float]) -> str:
        points = (", ".join(f"{v:.2f} (seed {seed})" for seed, v in g.items()) if len(g) > 1
                  else f"{next(iter(g.values())):.2f}")
        verdict = f"within {RULE} point" if all(v <= RULE for v in g.values()) else \
            f"more than {RULE} point" if all(v > RULE for v in g.values()) else f"more than {RULE} point at some seeds"
        return f"{points} points ({verdict})"

    return ("<!-- written by scripts/convergence.py; do not edit -->\n"
            f"Test accuracy (%) on the 10,000 Fashion-MNIST test images after training on {N_TRAIN:,} "
            f"training images (the canvas network: {min(N_TRAIN, zoo.CANVAS_TRAIN):,}), as in the book, "
            f"trained as the book trains them ({_precision_text()}), "
            f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}:\n\n" + "\n".join(lines) +
            f"\n\nThe book trains {budget} epochs. Below the {longest}-epoch accuracy: " +
            "; ".join(f"{NETWORKS[n]} {below(g)}" for n, g in gaps(acc, budget).items()) + ".\n")


def _precision_text() -> str:
    """How the book's networks train on this machine (runtime.training_precision)."""
    if runtime.training_precision(zoo.ENTRIES["baseline"].precision) == "bf16":
        return "bfloat16 autocast, float32 weights"
    return "float32, as on every CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "cache")
    args = ap.parse_args()
    if args.budget not in args.epochs:
        ap.error(f"--budget {args.budget} must be one of --epochs {args.epochs}")
    seeds = sorted(set(args.seeds))
    acc = measure(sorted(set(args.epochs)), seeds, args.cache)
    atomic_write_bytes(ROOT / "results" / "convergence.json",
                       json.dumps({"seeds": seeds, "n_train": N_TRAIN, "accuracy": acc}, indent=2).encode())
    text = markdown(acc, args.budget)
    atomic_write_bytes(ROOT / "book" / "convergence.md", text.encode())
    print(text)
    return 0 if all(g <= RULE for per_seed in gaps(acc, args.budget).values() for g in per_seed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
