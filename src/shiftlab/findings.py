"""One verdict rule for every claim: an effect, its 95 % interval, and reproduced / reversed / not resolved.

An effect is signed so that a positive value is the direction the paper claims. Its interval is a
paired Student-t interval over seeds where the design pairs networks by seed (every arm of a seed
shares initialisation and training subset), or a percentile bootstrap over test images where one
pair of models (or one model under two conditions) is compared on the same images. The verdict is
*reproduced* when the whole interval is above zero, *reversed* when it is below, and *not resolved
at this budget* when it contains zero. A finding's words (its claim, protocol, the paper's result and what each
verdict means) come from the book's text file (``prose``), filled with values the notebook passes; chapters glue the
verdict and the meaning it selects, so no conclusion is typed in a notebook. ``save_all`` / ``load_all`` carry the
findings to the summary chapter and ``scripts/check_findings.py``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import prose, results

REPRODUCED, REVERSED, UNRESOLVED = "reproduced", "reversed", "not resolved at this budget"
VERDICTS = (REPRODUCED, REVERSED, UNRESOLVED)
UNITS = {"pp": "percentage points", "": ""}
BY_NAME = dict(zip(prose.MEANINGS, VERDICTS, strict=True))   # each verdict by its name in the text file


def verdict(low: float, high: float) -> str:
    """reproduced if low > 0, reversed if high < 0, else not resolved (the interval contains 0)."""
    if low > 0:
        return REPRODUCED
    if high < 0:
        return REVERSED
    return UNRESOLVED


def _t_cdf(t: float, df: int) -> float:
    """Student-t CDF at t >= 0: 1/2 + ∫_0^t density, by Simpson's rule on 2000 panels."""
    grid = np.linspace(0.0, t, 2001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    dens = np.exp(log_c - (df + 1) / 2 * np.log1p(grid ** 2 / df))
    h = t / 2000
    return 0.5 + h / 3 * (dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())


def t_quantile(df: int, q: float = 0.975) -> float:
    """The q-quantile (q > 1/2) of Student's t with df degrees of freedom, by bisection on its CDF."""
    if df < 1 or not 0.5 < q < 1:
        raise ValueError(f"t_quantile needs df >= 1 and 0.5 < q < 1, got df={df}, q={q}")
    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): mean ± t_{0.975, n-1} sd / sqrt(n); infinite when n < 2 (nothing is resolved)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, -math.inf, math.inf
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def bootstrap_interval(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): mean over items and the 2.5 / 97.5 % percentiles of its bootstrap resamples."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(v.mean()), float(low), float(high)


@dataclass(frozen=True)
class Finding:
    """A claim decided by the verdict rule: effect (positive = the claimed direction) and its 95 % interval."""

    key: str
    claim: str
    effect: float
    low: float
    high: float
    method: str
    unit: str = "pp"
    protocol: str = ""
    paper: str = ""
    means: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is unknown; valid: {', '.join(map(repr, UNITS))}")
        missing = set(self.means) - set(VERDICTS)
        if missing:
            raise ValueError(f"means has keys {sorted(missing)}; valid: {', '.join(VERDICTS)}")

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def _fmt(self, v: float) -> str:
        if math.isinf(v):
            return "-∞" if v < 0 else "∞"
        return f"{100 * v:+.2f}" if self.unit == "pp" else f"{v:+.3g}"

    def interval(self) -> str:
        """The effect and its interval in the finding's unit, e.g. '+4.20 pp [+3.10, +5.30]'."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self._fmt(self.effect)}{unit} [{self._fmt(self.low)}, {self._fmt(self.high)}]"

    def sentence(self) -> str:
        """'<claim>: <verdict> (effect +x pp, 95 % interval [a, b], <method>).'"""
        return f"{self.claim}: {self.verdict} (effect {self.interval()}, 95 % interval, {self.method})."

    def meaning(self) -> str:
        """The chapter's interpretation for the verdict measured (its sentence when none is given)."""
        return self.means.get(self.verdict, self.sentence())


def decided(key: str, values: dict, effect: float, low: float, high: float, method: str, unit: str = "pp") -> Finding:
    """The finding of claim `key` of the book's text file, its texts filled with values, for a measured effect and
    interval (the finding's key is the claim key filled; a meaning left empty there is not stored, so the finding's
    sentence stands for it)."""
    text = prose.claim(key, values)
    means = {BY_NAME[name]: meaning for name, meaning in text["means"].items() if meaning is not None}
    return Finding(text["key"], text["claim"], effect, low, high, method, unit=unit, protocol=text["protocol"],
                   paper=text["paper"], means=means)


def by_seed(key: str, differences: Sequence[float], unit: str = "pp", **values) -> Finding:
    """The finding of claim `key` from per-seed paired differences (arm B - arm A at the same seed): t interval,
    n - 1 df; values fill the claim's texts."""
    mean, low, high = t_interval(differences)
    return decided(key, values, mean, low, high, f"paired by seed, t interval, n = {len(differences)}", unit)


def by_image(key: str, differences: Sequence[float], seed: int = 0, item: str = "image", unit: str = "pp",
             **values) -> Finding:
    """The finding of claim `key` from per-item paired differences (an item: a test image, or e.g. a scene of
    several): percentile bootstrap of their mean over the items; values fill the claim's texts."""
    mean, low, high = bootstrap_interval(differences, seed=seed)
    return decided(key, values, mean, low, high, f"paired by {item}, bootstrap, n = {len(differences)}", unit)


def table(found: Sequence[Finding]) -> pd.DataFrame:
    """A reader's table: the claim in words, the paper's result, ours with its interval, verdict, method."""
    return pd.DataFrame([{"claim": f.claim, "paper": f.paper or "–", "measured (95 % interval)": f.interval(),
                          "verdict": f.verdict, "method": f.method} for f in found]).set_index("claim")


def save_all(found: Sequence[Finding]) -> list[dict]:
    """The findings as JSON-able records (verdict included) for a chapter's results file."""
    keys = [f.key for f in found]
    if len(set(keys)) != len(keys):
        raise ValueError(f"finding keys repeat: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    return [{**asdict(f), "low": _finite_or_none(f.low), "high": _finite_or_none(f.high), "verdict": f.verdict}
            for f in found]


def _finite_or_none(v: float) -> float | None:
    """JSON has no infinity: an unbounded interval end is stored as null."""
    return v if math.isfinite(v) else None


def from_record(record: dict) -> Finding:
    """A Finding from a record written by ``save_all`` (the stored verdict is recomputed, not trusted)."""
    fields = {k: v for k, v in record.items() if k != "verdict"}
    fields["low"] = -math.inf if fields["low"] is None else fields["low"]
    fields["high"] = math.inf if fields["high"] is None else fields["high"]
    return Finding(**fields)


def load_all(results_dir: str | Path) -> list[tuple[str, Finding]]:
    """(chapter, finding) for every verdict in the results JSON files of a profile's folder, by chapter."""
    out = []
    for path in sorted(Path(results_dir).glob("[0-9][0-9]_*.json")):
        doc = results.load(path)
        out += [(doc["notebook"], from_record(r)) for r in doc["metrics"].get("verdicts", [])]
    return out


def disagreements(found: dict[str, str], stated: dict[str, str]) -> tuple[list[str], list[str]]:
    """(failures, new): failures are claims the book states that were not measured, and claims stated
    reproduced or reversed that measured otherwise; new are measured claims the book does not state yet."""
    failures = [f"{k}: stated {v!r}, not measured" for k, v in stated.items() if k not in found]
    failures += [f"{k}: stated {v!r}, measured {found[k]!r}" for k, v in stated.items()
                 if k in found and v != UNRESOLVED and found[k] != v]
    new = [k for k in found if k not in stated]
    return failures, new


def agreed(found: dict[str, str], stated: dict[str, str]) -> dict[str, str]:
    """The verdicts two runs share (two machines, or two seeds): a claim they decide differently was noise and is
    not resolved; a claim only one run measured keeps that run's verdict."""
    return {k: v if stated.get(k, v) == v else UNRESOLVED for k, v in found.items()}
