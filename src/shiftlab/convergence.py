"""How far the book's training budget is from convergence, per network: the record ``book/convergence.json`` that
``scripts/convergence.py`` writes, and what a chapter says of the networks it trains.

The rule (``RULE``): a network is trained near convergence when its test accuracy after the book's number of epochs
is within 1 point of its accuracy after the longest run measured (8 epochs, each run with its own one-cycle
schedule), at every seed measured. The gap of a network at a seed is acc[longest] - acc[budget] (points).
A network's row holds the cache key of its training configuration at the budget (``fingerprint``); a network that
now trains otherwise (other inputs, architecture or augmentation) reads as not measured until it is measured again.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from .runtime import project_root

RECORD = Path("book") / "convergence.json"
RULE = 1.0      # point


def path() -> Path:
    """The project's convergence record."""
    return project_root() / RECORD


def load(file: str | Path | None = None) -> dict | None:
    """The convergence record (``scripts/convergence.py``), or None when there is none."""
    file = Path(file) if file else path()
    return json.loads(file.read_text()) if file.is_file() else None


def fingerprint(name: str, n_train: int, budget: int) -> str:
    """The cache key of network `name`'s full configuration at n_train images, `budget` epochs and seed 0: what the
    record's measurements of it are measurements of."""
    from . import zoo

    return zoo.cache_key(zoo.full_config(name, n_train, budget, 0))


def _applies(record: dict | None, cfg: SimpleNamespace) -> bool:
    """Whether the record measured the training a run under parameters cfg does (profile, epochs, training images)."""
    return record is not None and (cfg.profile, cfg.epochs, cfg.n_train) == (record["profile"], record["budget"],
                                                                             record["n_train"])


def _as_trained(names: list[str], record: dict, cfg: SimpleNamespace) -> dict[str, dict]:
    """The record's rows of the networks `names` that were measured as they now train (their ``fingerprint``)."""
    rows = record["networks"]
    return {n: rows[n] for n in names
            if n in rows and rows[n].get("fingerprint") == fingerprint(n, cfg.n_train, record["budget"])}


def gaps(accuracy: dict, budget: int) -> dict[str, dict[str, float]]:
    """Per network and seed: points below the longest run's accuracy at the budget, acc[max] - acc[budget].
    `accuracy` maps network -> seed -> epochs -> test accuracy (%); JSON's string keys are read as numbers."""
    out = {}
    for name, per_seed in accuracy.items():
        out[name] = {}
        for seed, acc in per_seed.items():
            by_epochs = {int(e): a for e, a in acc.items()}
            out[name][seed] = by_epochs[max(by_epochs)] - by_epochs[budget]
    return out


def status(names: list[str], cfg: SimpleNamespace, record: dict | None = None) -> tuple[str, dict]:
    """What the record says of the networks `names` a chapter trains under its parameters `cfg`: the outcome of the
    prose text ``convergence`` (book/claims_text.yaml) and the values it is filled with.

    ``other_run``: the chapter trains otherwise than the record measured (profile, epochs or training images), so
    the record does not apply; ``unmeasured``: some network is not in the record, or was measured as it trained
    before (its ``fingerprint`` differs), and none of the others misses the rule; ``short_unmeasured``: some misses
    it and some are not measured; ``short``: some network misses the rule at some seed (the items name each, with
    its largest gap); ``within``: every network meets it."""
    record = load() if record is None else record
    names = list(dict.fromkeys(names))
    if not _applies(record, cfg):
        return "other_run", {"epochs": cfg.epochs, "n_train": cfg.n_train}
    measured = _as_trained(names, record, cfg)
    missing = [n for n in names if n not in measured]
    names = [n for n in names if n in measured]
    if not names:
        return "unmeasured", {"missing": ", ".join(missing)}
    worst = {n: max(gaps({n: measured[n]["accuracy"]}, record["budget"])[n].values()) for n in names}
    longest = max(int(e) for n in names for acc in measured[n]["accuracy"].values() for e in acc)
    short = [{"network": measured[n]["description"], "gap": worst[n]} for n in names if worst[n] > RULE]
    seeds = sorted({int(s) for n in names for s in measured[n]["accuracy"]})
    values = {"n": len(names), "budget": record["budget"], "longest": longest, "seeds": ", ".join(map(str, seeds))}
    if short and missing:
        return "short_unmeasured", {**values, "short": short, "k": len(short), "missing": ", ".join(missing)}
    if short:
        return "short", {**values, "short": short, "k": len(short)}
    if missing:
        return "unmeasured", {"missing": ", ".join(missing)}
    return "within", {**values, "worst": max(worst.values())}


def equivalence_budget(a: str, b: str, margin: float, cfg: SimpleNamespace,
                       record: dict | None = None) -> tuple[str, dict]:
    """Whether an equivalence claim between networks a and b (margin in points) can rest on the book's budget: per
    seed measured for both, how much more b gains than a from the budget to the longest run, d_s = gap_b - gap_a
    (the amount by which longer training would move their accuracy difference). ``within``: max |d_s| <= margin / 2;
    ``beyond``: larger; ``unmeasured``: no seed measured for both as they now train; ``other_run``: as in
    ``status``."""
    record = load() if record is None else record
    if not _applies(record, cfg):
        return "other_run", {"epochs": cfg.epochs, "n_train": cfg.n_train}
    measured = _as_trained([a, b], record, cfg)
    seeds = sorted(set.intersection(*(set(v["accuracy"]) for v in measured.values())), key=int) \
        if len(measured) == 2 else []
    values = {"a": a, "b": b, "margin": margin}
    if not seeds:
        return "unmeasured", values
    g = gaps({n: {s: v["accuracy"][s] for s in seeds} for n, v in measured.items()}, record["budget"])
    worst = max(abs(g[b][s] - g[a][s]) for s in seeds)
    values.update(worst=worst, seeds=", ".join(seeds), budget=record["budget"],
                  longest=max(int(e) for v in measured.values() for s in seeds for e in v["accuracy"][s]))
    return ("within" if worst <= margin / 2 else "beyond"), values
