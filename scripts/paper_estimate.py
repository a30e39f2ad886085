#!/usr/bin/env python
"""Estimate each chapter's run time under the paper profile on one GPU, on paper (no GPU here to measure).

    python scripts/paper_estimate.py [--events results/book] [--out book/paper_times.md]

Which models a chapter uses (zoo name and seed) is read from the events log of the last book run
(results/book/events-<chapter>.log, written by the zoo). Each model's training cost at paper scale is
its FLOPs per image (forward + backward, counted by torch's FlopCounterMode on the paper profile's dataset,
width and depth) x the paper profile's images x epochs, with the paper profile's number of seeds; the
evaluation cost is the chapter's warm book-run time scaled by the paper profile's evaluation size and
FLOPs per image, converted from this CPU's measured rate to the GPU's. Both are divided by an assumed
sustained GPU rate (ASSUMPTIONS below: what the published peak is, and what fraction small 32-64 px
networks reach): an order of magnitude, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import data, params, zoo  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

ASSUMPTIONS = {
    "gpu": "one NVIDIA A100 (40 GB)",
    "peak TFLOP/s": "19.5 FP32, 156 TF32 tensor cores (NVIDIA A100 datasheet)",
    "sustained TFLOP/s": 20.0,    # TF32 training of 32-64 px convnets at batch 128: about 13 % of the TF32 peak
    "cpu GFLOP/s": 25.0,          # the book's MaxPool network's training rate per core (make bench, part 2)
}
USED = re.compile(rf"^{zoo.USE_EVENT} (\S+) seed (\d+)$")
EVAL_SIZE = ("n_eval", "n_sequences", "n_scenes")


def used_models(events: Path) -> list[tuple[str, int]]:
    """(zoo name, seed) of every model a chapter used, once each, from its events log."""
    return list(dict.fromkeys((m[1], int(m[2])) for line in events.read_text().splitlines() if (m := USED.match(line))))


def training_flops(models_used: list[tuple[str, int]], book: dict, paper: dict) -> dict[tuple, float]:
    """Training FLOPs at paper scale of each model a chapter uses, keyed by (name, seed, dataset); a chapter that
    compares n_seeds seeds in the book trains the paper profile's n_seeds instead (seeds beyond the book's added),
    chapter 9 the ResNet-18s of zoo.RESNET18_TABLE, resnet18_seeds times, and chapter 2 the stride-2 stage counts
    of the paper profile that the book leaves out, none of which the book trains."""
    scale = zoo.profile_scale(SimpleNamespace(**paper))
    seeds = {seed for _, seed in models_used}
    extra = range(book.get("n_seeds", 1), paper.get("n_seeds", 1)) if len(seeds) > 1 else range(0)
    paper_only = [(m, paper["seed"] + s) for m in zoo.RESNET18_TABLE.values()
                  for s in range(paper.get("resnet18_seeds", 0))]
    paper_only += [(zoo.canvas_stages(k), paper["seed"])
                   for k in sorted(set(paper.get("stage_counts", [])) - set(book.get("stage_counts", [])))]
    out = {}
    for model, seed in dict.fromkeys(models_used + [(m, s) for m, _ in models_used for s in extra] + paper_only):
        config = zoo.full_config(model, paper["n_train"], paper["epochs"], seed, **scale)
        images = min(config["data"]["n_train"], data.SPLIT_SIZES[scale["dataset"]]["train"])   # CIFAR-10 has 50k
        out[(model, seed, scale["dataset"])] = zoo.flops_per_image(config) * images * paper["epochs"]
    return out


def evaluation_minutes(warm_seconds: float, book: dict, paper: dict) -> float:
    """The chapter's warm book-run time x (paper / book evaluation size) x (paper / book FLOPs per image of the
    MaxPool network), moved from this CPU's rate to the GPU's."""
    scale = zoo.profile_scale(SimpleNamespace(**paper))
    work = max([paper[k] / book[k] for k in EVAL_SIZE if k in book and k in paper] or [1.0])
    flops = (zoo.flops_per_image(zoo.full_config("baseline", 1, 1, 0, **scale))
             / zoo.flops_per_image(zoo.full_config("baseline", 1, 1, 0)))
    return warm_seconds * work * flops * ASSUMPTIONS["cpu GFLOP/s"] / (1e3 * ASSUMPTIONS["sustained TFLOP/s"]) / 60


def minutes(flops: float) -> float:
    return flops / (ASSUMPTIONS["sustained TFLOP/s"] * 1e12) / 60


def table(rows: list[dict]) -> str:
    """The estimate as a Markdown table. A chapter's row counts every model it uses (as when it runs alone); the
    last row counts each model once, as the whole book trains a shared model once."""
    distinct = {k: v for r in rows for k, v in r["flops"].items()}
    whole = {"chapter": "**the whole book**", "models": len(distinct), "flops": distinct,
             "eval min": sum(r["eval min"] for r in rows)}
    lines = ["| chapter | models trained | training (PFLOP) | training (min) | evaluation (min) | total (min) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows + [whole]:
        train = sum(r["flops"].values())
        lines.append(f"| {r['chapter']} | {len(r['flops'])} | {train / 1e15:.1f} | {minutes(train):.0f} | "
                     f"{r['eval min']:.1f} | {minutes(train) + r['eval min']:.0f} |")
    note = (f"\nEstimated, not measured: {ASSUMPTIONS['gpu']}, published peak {ASSUMPTIONS['peak TFLOP/s']}, "
            f"assumed sustained {ASSUMPTIONS['sustained TFLOP/s']:.0f} TFLOP/s for these small networks. A chapter's "
            "row counts every model it uses, as when it runs alone; the last row counts each model once.\n")
    return "\n".join(lines) + "\n" + note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--events", default=str(ROOT / "results" / "book"),
                    help="the book run's results folder (events-*.log)")
    ap.add_argument("--times", default=str(ROOT / "results" / "book" / "run_times.json"),
                    help="run_times.json with the chapters' warm times")
    ap.add_argument("--out", default=str(ROOT / "book" / "paper_times.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    events = Path(args.events)
    book, paper = (params.load_profile(p, ROOT / "params") for p in ("book", "paper"))
    times = json.loads(Path(args.times).read_text())
    rows = []
    for log in sorted(events.glob("events-*.log")):
        name = log.stem.removeprefix("events-")
        if name.startswith("99_"):
            continue
        warm = (times.get(name) or {}).get("warm") or (times.get(name) or {}).get("cold") or 0.0
        b, p = params.notebook_parameters(book, name), params.notebook_parameters(paper, name)
        rows.append({"chapter": name, "flops": training_flops(used_models(log), b, p),
                     "eval min": evaluation_minutes(warm, b, p)})
    text = table(rows)
    atomic_write_bytes(Path(args.out), text.encode())
    print(text)


if __name__ == "__main__":
    main()
