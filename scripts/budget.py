#!/usr/bin/env python
"""A profile's cold training time on this machine, predicted before anything trains.

    python scripts/budget.py [--profile book] [-p KEY=VALUE ...] [--cores N]

The models are the run's plan (scripts/run_notebooks.py --plan: exactly what the chapters will ask for). Each
architecture's training seconds per image are measured here as the zoo trains it (one thread, batch 128, its
augmentation or canvas placement, float32, accelerated), a few batches after one batch of warm-up; a model costs
its training images x epochs x that rate. The prediction is the models' total over the cores, with the models
trained side by side and nothing else running: a lower bound for the training part of a cold run, which also
evaluates (the last run's warm times say how long that takes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from train_zoo import plan  # noqa: E402  (scripts/, beside this file: the run's plan as JSON)

from shiftlab import data, fast, zoo  # noqa: E402
from shiftlab.models import ModelConfig, build  # noqa: E402
from shiftlab.runtime import cpu_count  # noqa: E402
from shiftlab.train import train  # noqa: E402

BATCHES = 6      # measured batches per architecture, after one of warm-up


def seconds_per_image(config: dict, images: data.Split) -> float:
    """Training seconds per image of a model's architecture, one thread, as the zoo trains it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tcfg = zoo.train_config(config)
    x = images.as_float(None if tcfg.canvas else config["data"]["image_size"])
    net = fast.accelerate(build(ModelConfig(**config["model"])))
    batch = tcfg.batch_size
    train(net, x[:2 * batch], images.labels[:2 * batch], replace(tcfg, epochs=4), progress=False)    # warm-up
    n = batch * BATCHES
    start = time.perf_counter()
    train(net, x[:n], images.labels[:n], replace(tcfg, epochs=1), progress=False)
    return (time.perf_counter() - start) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="book")
    ap.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--cores", type=int, default=cpu_count(), help="models trained side by side (default: cores)")
    args = ap.parse_args()
    models = plan(args.profile, args.overrides)
    images = data.load("fashion_mnist", "train").subset(128 * BATCHES, 0)
    rate: dict[str, float] = {}
    rows: dict[str, dict] = {}
    for m in models:
        config = m["config"]
        arch = json.dumps([config["model"], config["train"].get("canvas"), config["train"]["augment"],
                           config["data"]["image_size"]], sort_keys=True)
        if arch not in rate:
            rate[arch] = seconds_per_image(config, images)
        cost = config["data"]["n_train"] * config["train"]["epochs"] * rate[arch]
        row = rows.setdefault(m["name"], {"models": 0, "ms/image": 1000 * rate[arch], "seconds": 0.0,
                                          "images": config["data"]["n_train"], "epochs": config["train"]["epochs"]})
        row["models"] += 1
        row["seconds"] += cost
    total = sum(r["seconds"] for r in rows.values())
    print(f"{'network':<22} {'models':>6} {'images':>7} {'epochs':>6} {'ms/image':>8} {'thread-min':>10}")
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"{name:<22} {r['models']:>6} {r['images']:>7} {r['epochs']:>6} {r['ms/image']:>8.3f} "
              f"{r['seconds'] / 60:>10.1f}")
    print(f"{len(models)} models: {total / 60:.0f} thread-min of training, at least {total / 60 / args.cores:.0f} min "
          f"on {args.cores} core(s) (profile {args.profile}; evaluation not included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
