#!/usr/bin/env python
"""Test accuracy vs training epochs for every network the book trains: the measurement behind its training budget.

    python scripts/convergence.py [--networks NAME ...] [--seeds 0 1] [--epochs 4 8] [--budget 4] [--workers N]

Takes every zoo network of the book profile's plan (scripts/run_notebooks.py --plan; or the --networks given), trains
(or loads from the model cache) each at each seed for each number of epochs, as the book trains it (its own training
images, one-cycle schedule per run), and scores it on the 10k test images presented as it was trained (padded to its
frame, or placed on its canvas; the rotation-trained networks upright). The measurements are merged into the record
book/convergence.json (a network and seed measured again replaces its row), which the chapters read
(shiftlab.convergence) to say how far their networks are from convergence, and into the table book/convergence.md
that book/reproducing.md includes. Exits 1 while any network recorded misses the rule (shiftlab.convergence.RULE) at
some seed.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from tqdm.auto import tqdm  # noqa: E402

from shiftlab import convergence, params, runtime, weights, zoo  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

PROFILE = "book"
N_TEST = 10000
N_TRAIN = params.load_profile(PROFILE, ROOT / "params")["common"]["n_train"]     # the book's training images


def book_networks() -> list[str]:
    """The zoo networks the book profile's run trains, in the plan's order."""
    import train_zoo

    return list(dict.fromkeys(m["name"] for m in train_zoo.plan(PROFILE, [])))


def config(name: str, epochs: int, seed: int) -> dict:
    """The full configuration of network `name` as the book profile trains it, for that many epochs and that seed."""
    return zoo.full_config(name, N_TRAIN, epochs, seed)


def measure(names: list[str], epochs: list[int], seeds: list[int], cache_dir: Path,
            workers: int | None) -> dict[str, dict[int, dict[int, float]]]:
    """Test accuracy (%) of each network after each number of epochs, at each seed (trains what is not cached,
    the costliest first)."""
    configs = {(n, s, e): config(n, e, s) for n in names for s in seeds for e in epochs}
    def flops(c: dict) -> float:
        return zoo.flops_per_image(c) * c["data"]["n_train"] * c["train"]["epochs"]

    zoo.train_missing(sorted(configs.values(), key=flops, reverse=True), cache_dir, workers=workers)
    acc: dict[str, dict[int, dict[int, float]]] = {n: {s: {} for s in seeds} for n in names}
    for (n, s, e), c in tqdm(configs.items(), desc="scoring", unit="model"):
        acc[n][s][e] = round(weights.test_accuracy(zoo.model_path(cache_dir, c), c, N_TEST), 4)
    return acc


def merge(record: dict | None, acc: dict, budget: int) -> dict:
    """The record with the new measurements in (a network and seed measured again: its epochs replaced)."""
    out = copy.deepcopy(record) if record and (record["profile"], record["budget"], record["n_train"]) == (
        PROFILE, budget, N_TRAIN) else {"networks": {}}
    out.update({"profile": PROFILE, "budget": budget, "n_train": N_TRAIN, "n_test": N_TEST,
                "rule": convergence.RULE, "precision": _precision_text()})
    for name, per_seed in acc.items():
        entry = out["networks"].setdefault(name, {"accuracy": {}})
        entry["description"] = zoo.ENTRIES[name].description
        entry["n_train"] = config(name, budget, 0)["data"]["n_train"]
        if entry.get("fingerprint") != (key := convergence.fingerprint(name, N_TRAIN, budget)):
            entry.update(accuracy={}, fingerprint=key)     # measured as it trained before: those rows no longer apply
        for seed, by_epochs in per_seed.items():
            entry["accuracy"].setdefault(str(seed), {}).update({str(e): a for e, a in by_epochs.items()})
    out["seeds"] = sorted({int(s) for n in out["networks"].values() for s in n["accuracy"]})
    return out


def markdown(record: dict) -> str:
    """The accuracy-vs-epochs table (a row per network and seed) and each network's distance from its longest run."""
    budget, nets = record["budget"], record["networks"]
    epochs = sorted({int(e) for n in nets.values() for acc in n["accuracy"].values() for e in acc})
    lines = ["| network | training images | seed | " + " | ".join(f"{e} epoch{'s' * (e > 1)}" for e in epochs) +
             " | gap (points) |", "| --- | --- | --- |" + " --- |" * len(epochs) + " --- |"]
    gaps = convergence.gaps({n: v["accuracy"] for n, v in nets.items()}, budget)
    for name, v in nets.items():
        for seed, acc in sorted(v["accuracy"].items(), key=lambda kv: int(kv[0])):
            cells = [f"{acc[str(e)]:.2f}" if str(e) in acc else "–" for e in epochs]
            lines.append(f"| `{name}`: {v['description']} | {v['n_train']:,} | {seed} | " + " | ".join(cells) +
                         f" | {gaps[name][seed]:.2f} |")
    short = sorted({n for n, g in gaps.items() if max(g.values()) > convergence.RULE})
    verdict = ("Every network meets the rule." if not short else
               f"{len(short)} of {len(nets)} networks miss it at some seed: " + ", ".join(f"`{n}`" for n in short) +
               "; the chapters that train them say so beside their verdicts.")
    return ("<!-- written by scripts/convergence.py; do not edit -->\n"
            f"Test accuracy (%) on the {record['n_test']:,} Fashion-MNIST test images, presented as each network was "
            "trained (padded to its frame or placed on its canvas; the rotation-trained networks upright), after "
            f"training as the book profile does ({record['precision']}), for each number of epochs; gap: the longest "
            f"run's accuracy minus the book's {budget} epochs'. The rule: a gap of at most "
            f"{record['rule']:g} point at every seed. {verdict}\n\n" + "\n".join(lines) + "\n")


def _precision_text() -> str:
    """How the book's networks train on this machine (runtime.training_precision)."""
    if runtime.training_precision(zoo.ENTRIES["baseline"].precision) == "bf16":
        return "bfloat16 autocast, float32 weights"
    return "float32, as on every CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", metavar="NAME",
                    help="zoo networks to measure (default: every network the book profile trains)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--budget", type=int, default=4, help="the book's number of epochs (one of --epochs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--workers", type=int, default=0, metavar="N", help="training processes (default: one per core)")
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "cache")
    ap.add_argument("--record", type=Path, default=convergence.path(), help="the record to merge into")
    args = ap.parse_args(argv)
    if args.budget not in args.epochs:
        ap.error(f"--budget {args.budget} must be one of --epochs {args.epochs}")
    unknown = [n for n in args.networks or [] if n not in zoo.ENTRIES]
    if unknown:
        ap.error(f"unknown network(s) {', '.join(unknown)}; valid: {', '.join(zoo.ENTRIES)}")
    names = args.networks or book_networks()
    acc = measure(names, sorted(set(args.epochs)), sorted(set(args.seeds)), args.cache, args.workers or None)
    record = merge(convergence.load(args.record), acc, args.budget)
    atomic_write_bytes(args.record, (json.dumps(record, indent=1) + "\n").encode())
    text = markdown(record)
    atomic_write_bytes(args.record.with_suffix(".md"), text.encode())
    print(text)
    gaps = convergence.gaps({n: v["accuracy"] for n, v in record["networks"].items()}, args.budget)
    return 0 if all(g <= convergence.RULE for per_seed in gaps.values() for g in per_seed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
