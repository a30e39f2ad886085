"""One verdict rule for every claim: an effect, its 95 % interval, a p-value, and a verdict chosen by them.

An effect is signed so that a positive value is the direction the paper claims. Each entry of the book's text file
(``prose``) is one of three kinds:

- a **claim**, a comparison that could come out either way: *reproduced* when it is decided in the claimed direction,
  *reversed* when decided against it, *not resolved at this budget* otherwise;
- an **equivalence claim** ("keeps accuracy"), a claim with a margin δ: *equivalent* when two one-sided tests at
  5 % put the effect inside (-δ, δ) (TOST; Schuirmann 1987), else *better* / *worse* when the 95 % interval is
  above / below zero (for a primary claim, also its two-sided p times the family's size below 5 %), else *not
  resolved*;
- a **check**, an existence or by-construction measurement: it *passes* when the interval is above zero (or, for a
  check that expects zero, when two one-sided tests put it within its margin of zero) and *fails* otherwise; checks
  are reported apart and never counted as reproductions.

**Intervals.** A claim about training (network A vs network B, with or without augmentation) is decided *by seed*:
seed s trains every arm with its own initialisation, training order and training subset, and scores them on its
own test images with its own shift offsets, so the per-seed effects d_1..d_n are independent draws of everything
that varies between two runs of the experiment (training and the images scored). The interval is Student's
mean ± t_{0.975, n-1} sd/√n over them. We chose it over a two-level bootstrap (seeds, then images within a seed)
because with n = 5 seeds a bootstrap over seeds undercovers (its percentile interval ignores the n - 1 degrees of
freedom), while the t interval over per-seed effects is exact for normal effects and close for the bounded
averages measured here; ``tests/test_findings.py`` measures both coverages on synthetic data where the truth is
known. A claim about one fixed network (an exactness check, a filter's response) may be decided *by image*: a
percentile bootstrap of the mean over test images.

**Multiplicity.** Within a chapter, the claims it marks primary form one family and its other (exploratory) claims a
second: in each family the p-values (two-sided; for an equivalence claim the TOST p-value) are adjusted by Holm's
step-down method (Holm 1979; ``adjust``), and a claim is decided only when its adjusted p-value is below 5 %. The
summary chapter headlines the primary claims and reports the exploratory ones apart.

A finding's words (its claim, protocol, the paper's result and what each verdict means) come from the book's text file,
filled with values the notebook passes; chapters glue the verdict and the meaning it selects, so no conclusion is
typed in a notebook. ``save_all`` / ``load_all`` carry the findings to the summary chapter and
``scripts/check_findings.py``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import prose, results

ALPHA = 0.05
REPRODUCED, REVERSED, UNRESOLVED = "reproduced", "reversed", "not resolved at this budget"
EQUIVALENT, BETTER, WORSE = "equivalent", "better", "worse"
PASSES, FAILS = "passes", "fails"
CLAIM, CHECK = "claim", "check"
CLAIM_VERDICTS = (REPRODUCED, REVERSED, EQUIVALENT, BETTER, WORSE, UNRESOLVED)
CHECK_VERDICTS = (PASSES, FAILS)
VERDICTS = CLAIM_VERDICTS + CHECK_VERDICTS
UNITS = {"pp": "percentage points", "": ""}
BY_NAME = {"not resolved": UNRESOLVED, **{v: v for v in VERDICTS if v != UNRESOLVED}}   # by its name in the text file


def verdict(low: float, high: float) -> str:
    """reproduced if low > 0, reversed if high < 0, else not resolved (the interval contains 0)."""
    if low > 0:
        return REPRODUCED
    if high < 0:
        return REVERSED
    return UNRESOLVED


def t_cdf(t: float, df: int) -> float:
    """Student-t CDF, 1/2 ± ∫_0^|t| density: with t = √df tan θ the integral is
    Γ((df+1)/2) / (√π Γ(df/2)) ∫_0^atan(|t|/√df) cos^(df-1) θ dθ, a smooth bounded integrand, by Simpson's rule on
    2000 panels (monotone in t, and 1/2 ± 1/2 at infinity to 1e-12)."""
    end = math.atan(abs(t) / math.sqrt(df)) if math.isfinite(t) else math.pi / 2
    theta = np.linspace(0.0, end, 2001)
    dens = np.cos(theta) ** (df - 1)
    h = end / 2000
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)
    half = c * h / 3 * (dens[0] + dens[-1] + 4 * dens[1:-1:2].sum() + 2 * dens[2:-1:2].sum())
    return float(min(1.0, max(0.0, 0.5 + half if t >= 0 else 0.5 - half)))


def t_quantile(df: int, q: float = 0.975) -> float:
    """The q-quantile (q > 1/2) of Student's t with df degrees of freedom, by bisection on its CDF."""
    if df < 1 or not 0.5 < q < 1:
        raise ValueError(f"t_quantile needs df >= 1 and 0.5 < q < 1, got df={df}, q={q}")
    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): mean ± t_{0.975, n-1} sd / sqrt(n); infinite when n < 2 (nothing is resolved)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, -math.inf, math.inf
    half = t_quantile(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def t_tests(values: Sequence[float], margin: float | None = None) -> tuple[float, float | None]:
    """(p, p_equivalence) of the mean of values: the two-sided one-sample t test of mean = 0, and, given a margin δ,
    the TOST p-value max(P(T ≥ (m + δ)/se), P(T ≤ (m - δ)/se)) for |mean| < δ (None without a margin); both 1 when
    n < 2. A spread of zero decides by the mean alone."""
    v = np.asarray(values, dtype=float)
    n, mean = len(v), float(v.mean())
    if n < 2:
        return 1.0, None if margin is None else 1.0
    se = float(v.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return p, None if margin is None else (0.0 if abs(mean) < margin else 1.0)
    p = 2 * (1 - t_cdf(abs(mean) / se, n - 1))
    if margin is None:
        return p, None
    return p, max(1 - t_cdf((mean + margin) / se, n - 1), t_cdf((mean - margin) / se, n - 1))


def bootstrap_means(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """n_boot means of resamples (with replacement) of values."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    return v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)


def bootstrap_interval(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): mean over items and the 2.5 / 97.5 % percentiles of its bootstrap resamples."""
    low, high = np.percentile(bootstrap_means(values, n_boot, seed), [2.5, 97.5])
    return float(np.mean(values)), float(low), float(high)


def bootstrap_tests(values: Sequence[float], margin: float | None = None, n_boot: int = 2000,
                    seed: int = 0) -> tuple[float, float | None]:
    """(p, p_equivalence) from the bootstrap means: p = 2 min(P*(mean ≤ 0), P*(mean ≥ 0)), and given a margin δ
    max(P*(mean ≤ -δ), P*(mean ≥ δ)) (None without one)."""
    means = bootstrap_means(values, n_boot, seed)
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    if margin is None:
        return p, None
    return p, max(float((means <= -margin).mean()), float((means >= margin).mean()))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sorted ascending, p_(i) becomes max_{j ≤ i} min(1, (m - j + 1) p_(j))."""
    order = np.argsort(ps, kind="stable")
    adjusted, running = [1.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * float(ps[i])))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Finding:
    """A claim, equivalence claim or check, decided by the verdict rule: effect (positive = the claimed direction),
    its 95 % interval, its p-values, and for a primary claim the p-value adjusted within its chapter's family."""

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
    kind: str = CLAIM
    primary: bool = False
    margin: float | None = None
    expect: str = "positive"
    p: float | None = None
    p_equivalence: float | None = None
    p_adjusted: float | None = None
    p_direction_adjusted: float | None = None
    n: int | None = None

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r} is unknown; valid: {', '.join(map(repr, UNITS))}")
        if self.kind not in (CLAIM, CHECK):
            raise ValueError(f"kind {self.kind!r} is unknown; valid: {CLAIM!r}, {CHECK!r}")
        missing = set(self.means) - set(self.verdicts())
        if missing:
            raise ValueError(f"means has keys {sorted(missing)}; valid: {', '.join(self.verdicts())}")

    def verdicts(self) -> tuple[str, ...]:
        """The verdicts this finding can reach."""
        if self.kind == CHECK:
            return CHECK_VERDICTS
        if self.margin is not None:
            return EQUIVALENT, BETTER, WORSE, UNRESOLVED
        return REPRODUCED, REVERSED, UNRESOLVED

    @property
    def family(self) -> str:
        """'check', 'primary' or 'exploratory'."""
        return CHECK if self.kind == CHECK else "primary" if self.primary else "exploratory"

    @property
    def verdict(self) -> str:
        if self.kind == CHECK:
            if self.expect == "zero":            # within its margin of zero, by two one-sided tests
                return PASSES if self.p_equivalence is not None and self.p_equivalence < ALPHA else FAILS
            return PASSES if self.low > 0 else FAILS
        significant = self.p_adjusted is None or self.p_adjusted < ALPHA
        if self.margin is not None:
            p_eq = self.p_adjusted if self.p_adjusted is not None else self.p_equivalence
            if p_eq is not None and p_eq < ALPHA:
                return EQUIVALENT
            if self.p_direction_adjusted is not None and self.p_direction_adjusted >= ALPHA:
                return UNRESOLVED
            return BETTER if self.low > 0 else WORSE if self.high < 0 else UNRESOLVED
        decided = verdict(self.low, self.high)
        return decided if significant else UNRESOLVED

    def _fmt(self, v: float) -> str:
        if math.isinf(v):
            return "-∞" if v < 0 else "∞"
        return f"{100 * v:+.2f}" if self.unit == "pp" else f"{v:+.3g}"

    def interval(self) -> str:
        """The effect and its interval in the finding's unit, e.g. '+4.20 pp [+3.10, +5.30]'."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{self._fmt(self.effect)}{unit} [{self._fmt(self.low)}, {self._fmt(self.high)}]"

    def margin_text(self) -> str:
        """The equivalence margin in the finding's unit ('±0.50 pp'), or '' for a claim without one."""
        if self.margin is None:
            return ""
        return f"±{100 * self.margin:.2f} pp" if self.unit == "pp" else f"±{self.margin:.3g}"

    def sentence(self) -> str:
        """'<claim>: <verdict> (effect +x pp, 95 % interval [a, b], <method>[, margin ±δ][, Holm p]).'"""
        extra = f", margin {self.margin_text()}" if self.margin is not None else ""
        if self.p_adjusted is not None:
            extra += (f", Holm-adjusted p = {self.p_adjusted:.2g}" if self.margin is None else
                      f", equivalence (TOST) Holm-adjusted p = {self.p_adjusted:.2g}")
        if self.p_direction_adjusted is not None:
            extra += f", direction (two-sided, Bonferroni) p = {self.p_direction_adjusted:.2g}"
        return f"{self.claim}: {self.verdict} (effect {self.interval()}, 95 % interval, {self.method}{extra})."

    def meaning(self) -> str:
        """The chapter's interpretation for the verdict measured (its sentence when none is given)."""
        return self.means.get(self.verdict, self.sentence())


def decided(text: dict, effect: float, low: float, high: float, method: str, unit: str = "pp",
            tests: tuple[float, float | None] | None = None, n: int | None = None) -> Finding:
    """The finding of an entry of the book's text file, given its texts filled with values (``prose.claim``), for a
    measured effect, its interval and its (p, p_equivalence) (the finding's key is the claim key filled; a meaning left
    empty there is not stored, so the finding's sentence stands for it)."""
    means = {BY_NAME[name]: meaning for name, meaning in text["means"].items() if meaning is not None}
    p, p_eq = tests if tests is not None else (None, None)
    return Finding(text["key"], text["claim"], effect, low, high, method, unit=unit, protocol=text["protocol"],
                   paper=text["paper"], means=means, kind=text["kind"], primary=text["primary"],
                   margin=text["margin"], expect=text["expect"], p=p, p_equivalence=p_eq, n=n)


def _finite(key: str, values: Sequence[float]) -> np.ndarray:
    """values as an array, refused (naming the finding) when one is not a finite number."""
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all() or v.ndim != 1:
        raise ValueError(f"{key}: the effects must be finite numbers, one per seed or item; got {list(values)}")
    return v


def _tost_interval(v: np.ndarray, unit: str) -> str:
    """', TOST 90 % interval [a, b]': the interval two one-sided tests at 5 % compare with the margin."""
    if len(v) < 2:
        return ""
    half = t_quantile(len(v) - 1, 0.95) * float(v.std(ddof=1)) / math.sqrt(len(v))
    fmt = (lambda x: f"{100 * x:+.2f}") if unit == "pp" else (lambda x: f"{x:+.3g}")
    return f", TOST 90 % interval [{fmt(v.mean() - half)}, {fmt(v.mean() + half)}]"


def by_seed(key: str, differences: Sequence[float], unit: str = "pp", **values) -> Finding:
    """The finding of entry `key` from per-seed effects (arm B - arm A at the same seed, each seed on its own test
    images and shift offsets): t interval and t tests on n - 1 df; values fill the entry's texts."""
    text = prose.claim(key, values)
    v = _finite(key, differences)
    mean, low, high = t_interval(v)
    method = f"by seed, t interval, n = {len(v)}" + ("" if text["margin"] is None else _tost_interval(v, unit))
    return decided(text, mean, low, high, method, unit, t_tests(v, text["margin"]), len(v))


def by_image(key: str, differences: Sequence[float], seed: int = 0, item: str = "image", unit: str = "pp",
             **values) -> Finding:
    """The finding of entry `key` from per-item paired differences of one fixed network (an item: a test image, or
    e.g. a scene of several): percentile bootstrap of their mean over the items (unbounded for fewer than two items);
    values fill the entry's texts."""
    text = prose.claim(key, values)
    margin = text["margin"]
    v = _finite(key, differences)
    mean, low, high = bootstrap_interval(v, seed=seed) if len(v) >= 2 else (float(v.mean()), -math.inf, math.inf)
    tests = bootstrap_tests(v, margin, seed=seed) if len(v) >= 2 else (1.0, None if margin is None else 1.0)
    return decided(text, mean, low, high, f"paired by {item}, bootstrap, n = {len(v)}", unit, tests, len(v))


FAMILIES = ("primary", "exploratory")     # a chapter's claims form these two families; checks form none


def adjust(found: Sequence[Finding]) -> list[Finding]:
    """The findings with the claims' p-values Holm-adjusted within each family, the primary claims and the
    exploratory ones (for an equivalence claim its TOST p-value); an equivalence claim's *better* / *worse*, a second
    question, needs its two-sided p-value times its family's size (Bonferroni) below 5 %. Checks, and a claim built
    without a test (no p-value), unchanged."""
    out = list(found)
    for name in FAMILIES:
        family = [i for i, f in enumerate(found) if f.kind == CLAIM and f.family == name and f.p is not None]
        ps = [found[i].p_equivalence if found[i].margin is not None else found[i].p for i in family]
        ps = [1.0 if p is None else p for p in ps]
        for i, p_adj in zip(family, holm(ps), strict=True):
            direction = None
            if found[i].margin is not None:
                direction = min(1.0, len(family) * (1.0 if found[i].p is None else found[i].p))
            out[i] = replace(found[i], p_adjusted=p_adj, p_direction_adjusted=direction)
    return out


def table(found: Sequence[Finding]) -> pd.DataFrame:
    """A reader's table: the claim in words, the paper's result, ours with its interval, verdict, kind, method."""
    return pd.DataFrame([{"claim": f.claim, "paper": f.paper or "–", "measured (95 % interval)": f.interval(),
                          "verdict": f.verdict, "kind": f.family + (f", margin {f.margin_text()}" if f.margin else ""),
                          "method": f.method + _adjusted_text(f)}
                         for f in found]).set_index("claim")


def _adjusted_text(f: Finding) -> str:
    """', Holm p = …' for a claim; for an equivalence claim the equivalence test's and the direction's p apart."""
    if f.p_adjusted is None:
        return ""
    if f.margin is None:
        return f", Holm p = {f.p_adjusted:.2g}"
    return f", TOST Holm p = {f.p_adjusted:.2g}, direction p = {f.p_direction_adjusted:.2g}"


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
    known = {f.name for f in fields(Finding)}
    values = {k: v for k, v in record.items() if k in known}
    values["low"] = -math.inf if values["low"] is None else values["low"]
    values["high"] = math.inf if values["high"] is None else values["high"]
    return Finding(**values)


def load_all(results_dir: str | Path) -> list[tuple[str, Finding]]:
    """(chapter, finding) for every verdict in the results JSON files of a profile's folder, by chapter."""
    out = []
    for path in sorted(Path(results_dir).glob("[0-9][0-9]_*.json")):
        doc = results.load(path)
        out += [(doc["notebook"], from_record(r)) for r in doc["metrics"].get("verdicts", [])]
    return out


def disagreements(found: dict[str, str], stated: dict[str, str]) -> tuple[list[str], list[str]]:
    """(differences, new): claims the book states that were not measured, and claims measured with another verdict
    than stated; new are measured claims the book does not state yet."""
    differences = [f"{k}: stated {v!r}, not measured" for k, v in stated.items() if k not in found]
    differences += [f"{k}: stated {v!r}, measured {found[k]!r}" for k, v in stated.items()
                    if k in found and found[k] != v]
    new = [k for k in found if k not in stated]
    return differences, new


def agreed(found: dict[str, str], stated: dict[str, str]) -> dict[str, str]:
    """The verdicts two runs share (two seed sets, or two machines): a claim they decide differently was noise and is
    not resolved (a check they decide differently fails); a claim only one run measured keeps that run's verdict."""
    return {k: v if stated.get(k, v) == v else (FAILS if v in CHECK_VERDICTS else UNRESOLVED)
            for k, v in found.items()}


def summary(measured: Sequence[tuple[str, Finding]], stated: dict[str, str], second: dict[str, str]) -> pd.DataFrame:
    """One row per finding of a run: chapter number, claim, family, margin, measured effect and interval, Holm p, this
    run's verdict, the second seed set's verdict (``second``: book/replication.yaml, '–' when not run), whether they
    agree, the verdict both reach (``agreed``), the verdict book/claims.yaml states, and whether the verdict both
    reach (this run's, with no second seed set) differs from it."""
    rows = []
    for chapter, f in measured:
        other = second.get(f.key)
        both = agreed({f.key: f.verdict}, {f.key: other} if other else {})[f.key]
        rows.append({"chapter": int(chapter[:2]), "claim": f.claim, "key": f.key, "kind": f.family,
                     "margin": f.margin_text() or "–", "paper": f.paper or "–",
                     "measured (95 % interval)": f.interval(),
                     "Holm p": "–" if f.p_adjusted is None else _adjusted_text(f).removeprefix(", Holm p = ")
                     .removeprefix(", "), "this run": f.verdict,
                     "second seed set": other or "–",
                     "replication": "not run" if other is None else "agrees" if other == f.verdict else "differs",
                     "both seed sets": both, "stated": stated.get(f.key, "–"),
                     "differs from stated": f.key in stated and stated[f.key] != both})
    return pd.DataFrame(rows)


def protocol_changes(found: Sequence[Finding], recorded: dict, stated: dict[str, str],
                     entries: dict) -> list[dict[str, str]]:
    """The claims among `found` whose protocol differs from the one their stated verdict was measured under and whose
    verdict differs from that stated one: [{claim, before, now}] (the verdict stated under the old protocol and this
    run's). Arguments as ``protocol_before``."""
    out = []
    for f in found:
        change = None if f.family == CHECK else protocol_before(f.key, recorded, stated, entries)
        if change is not None and change[1] is not None and change[1] != f.verdict:
            out.append({"claim": f.claim, "before": change[1], "now": f.verdict})
    return out


def protocol_before(key: str, recorded: dict, stated: dict[str, str],
                    entries: dict) -> tuple[dict, str | None, bool] | None:
    """The protocol finding `key` was stated under before its protocol changed: (that record's texts {claim,
    protocol}, the verdict stated under them, whether the book already states a verdict under the new protocol), or
    None when its protocol did not change, or when either file has no text for it (a new or a removed claim).

    `recorded`: book/claims_protocols.yaml (per key its protocol template, ``entry`` when the key fills a template,
    ``previous`` {claim, protocol, stated} when the last record changed the protocol); `stated`: book/claims.yaml;
    `entries`: book/claims_text.yaml's claims. The protocol changed when the entry's template differs from the
    recorded one (not recorded yet: the old verdict is the one `stated` gives), or when the record holds a
    ``previous`` block (recorded under the new protocol; shown for that one record)."""
    rec = recorded.get(key)
    name = rec.get("entry", key) if isinstance(rec, dict) else None
    if name not in entries or rec.get("protocol") is None:
        return None
    if rec["protocol"] != entries[name]["protocol"]:
        return rec, stated.get(key), False
    if isinstance(rec.get("previous"), dict):
        return rec["previous"], rec["previous"].get("stated"), True
    return None


def same_protocol(verdicts: dict[str, str], their_protocols: dict[str, str],
                  measured: Sequence[tuple[str, Finding]]) -> dict[str, str]:
    """The verdicts of a second seed set (book/replication.yaml's ``verdicts``) whose finding it measured under the
    protocol this run measured it under: `their_protocols` (its ``protocols``, the filled protocol text of each) equal
    to the finding's in `measured`. A verdict reached under another protocol, or one whose protocol was not recorded,
    is not compared with this run's."""
    ours = {f.key: f.protocol for _, f in measured}
    return {k: v for k, v in verdicts.items() if k in ours and their_protocols.get(k) == ours[k]}
