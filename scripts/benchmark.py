#!/usr/bin/env python
"""Time training and evaluation of the zoo architectures on this machine.

    python scripts/benchmark.py [--n 10000] [--kinds max maxblur]

Prints, per downsampling kind: seconds per training epoch over n images (extrapolated to 60k),
and evaluation throughput (images per second, at metrics.predict_logits's default batch size). Numbers for the issue notes and for
sizing the profiles; nothing here is asserted by the tests.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import torch  # noqa: E402

from shiftlab import data, metrics, models, runtime, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--n", type=int, default=10000, help="training images to time one epoch on")
    ap.add_argument("--kinds", nargs="+", default=["max", "maxblur", "strided", "convblur"],
                    choices=models.DOWNSAMPLE_KINDS)
    ap.add_argument("--filt-size", type=int, default=3)
    args = ap.parse_args()
    runtime.set_threads()
    split = data.load("fashion_mnist", "train").subset(args.n)
    x, y = split.as_float(32), split.labels
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images")
    print(f"{'kind':10s} {'s/epoch (n)':>12s} {'s/epoch (60k)':>14s} {'eval img/s':>11s}")
    for kind in args.kinds:
        runtime.seed_everything(0)
        cfg = models.ModelConfig(downsample=kind, filt_size=1 if kind in ("max", "strided") else args.filt_size,
                                 padding="circular")
        model = models.build(cfg)
        start = time.perf_counter()
        train.train(model, x, y, train.TrainConfig(epochs=1), progress=False)
        epoch = time.perf_counter() - start
        start = time.perf_counter()
        metrics.predict_logits(model, x)
        rate = len(x) / (time.perf_counter() - start)
        print(f"{kind:10s} {epoch:12.1f} {epoch * 60000 / args.n:14.1f} {rate:11.0f}")


if __name__ == "__main__":
    main()
