"""The verdict rule: intervals, verdicts, records and the check of stated claims; a finding's words from a text file."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from shiftlab import findings, prose, results
from shiftlab.findings import REPRODUCED, REVERSED, UNRESOLVED

ROOT = Path(__file__).resolve().parent.parent
TEXTS = """
claims:
  k: {claim: c, protocol: p, reproduced: ~, reversed: ~, not resolved: ~}
  k2: {claim: c2, protocol: p, reproduced: ~, reversed: ~, not resolved: ~}
  p1: {claim: P1, protocol: p, primary: true, reproduced: ~, reversed: ~, not resolved: ~}
  p2: {claim: P2, protocol: p, primary: true, reproduced: ~, reversed: ~, not resolved: ~}
  keeps:
    claim: Keeps accuracy
    protocol: p
    margin: 0.005
    equivalent: Same accuracy.
    better: ~
    worse: ~
    not resolved: ~
  rate: {claim: Some change, protocol: p, kind: check, passes: It changes., fails: ~}
  chance: {claim: At chance, protocol: p, kind: check, expect: zero, margin: 0.02, passes: ~, fails: ~}
  a: {claim: A, protocol: p, reproduced: ~, reversed: ~, not resolved: ~}
  b: {claim: B, protocol: p, reproduced: ~, reversed: ~, not resolved: ~}
  c: {claim: C, protocol: p, reproduced: ~, reversed: ~, not resolved: ~}
  rises_{shift}:
    claim: Consistency rises
    protocol: "{shift} shifts, {n} test images"
    paper: "{gain:+.1f} pp"
    reproduced: Blur helps.
    reversed: Blur hurts.
    not resolved: ~
"""
RISES = {"shift": "crop", "n": 500, "gain": 1.7}


@pytest.fixture(autouse=True)
def texts(tmp_path, monkeypatch):
    """Claims of the tests' own, in place of the book's text file."""
    path = tmp_path / "claims_text.yaml"
    path.write_text(TEXTS)
    monkeypatch.setattr(prose, "path", lambda: path)


@pytest.mark.parametrize("low, high, expected", [(0.01, 0.2, REPRODUCED), (-0.3, -0.1, REVERSED),
                                                 (-0.1, 0.2, UNRESOLVED), (0.0, 0.1, UNRESOLVED)])
def test_verdict_is_decided_by_the_sign_of_the_whole_interval(low, high, expected):
    assert findings.verdict(low, high) == expected


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (100, 1.984)])
def test_t_quantile_matches_the_printed_table(df, expected):
    assert findings.t_quantile(df) == pytest.approx(expected, abs=2e-3)


def test_t_interval_by_hand():
    mean, low, high = findings.t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half width 4.303 / sqrt(3)
    assert mean == 2.0
    assert high - mean == pytest.approx(4.3027 / math.sqrt(3), abs=1e-3)
    assert mean - low == pytest.approx(high - mean)


def test_one_seed_resolves_nothing():
    f = findings.by_seed("k", [0.5])
    assert (f.low, f.high) == (-math.inf, math.inf) and f.verdict == UNRESOLVED


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = findings.bootstrap_interval(rng.normal(0.1, 1, 100))
    large = findings.bootstrap_interval(rng.normal(0.1, 1, 10000))
    assert small[1] < small[0] < small[2]
    assert large[2] - large[1] < (small[2] - small[1]) / 5
    assert findings.by_image("k", rng.normal(0.1, 1, 10000)).verdict == REPRODUCED


def test_a_constant_difference_is_decided_without_width():
    assert findings.by_image("k", [-0.02] * 50).verdict == REVERSED


def test_sentence_and_meaning_follow_the_verdict():
    f = findings.by_seed("rises_{shift}", [0.04, 0.05, 0.045], **RISES)
    assert f.verdict == REPRODUCED
    assert f.sentence().startswith("Consistency rises: reproduced (effect +4.50 pp [")
    assert f.meaning() == "Blur helps."
    g = findings.by_seed("rises_{shift}", [0.04, -0.05, 0.01], **RISES)
    assert g.verdict == UNRESOLVED and g.meaning() == g.sentence()      # a meaning left ~ is the finding's sentence


def test_a_finding_takes_its_words_from_the_text_file():
    f = findings.by_image("rises_{shift}", [0.1, 0.2], seed=3, shift="circular roll", n=64, gain=-0.25)
    assert (f.key, f.claim, f.protocol, f.paper) == ("rises_circular_roll", "Consistency rises",
                                                     "circular roll shifts, 64 test images", "-0.2 pp")
    assert f.means == {REPRODUCED: "Blur helps.", REVERSED: "Blur hurts."}      # ~ is not stored: the sentence stands
    assert set(findings.save_all([f])[0]) == {"key", "claim", "effect", "low", "high", "method", "unit", "protocol",
                                              "paper", "means", "verdict", "kind", "primary", "margin", "expect", "p",
                                              "p_equivalence", "p_adjusted", "p_direction_adjusted", "n"}
    with pytest.raises(prose.ProseError, match=r"needs the values \['gain'\]"):
        findings.by_seed("rises_{shift}", [0.1, 0.2], shift="crop", n=3)
    with pytest.raises(prose.ProseError, match="no claim 'nope'"):
        findings.by_seed("nope", [0.1, 0.2])


def test_book_keys_with_placeholders_fill_to_the_recorded_keys():
    """A value with a space or a dot fills a key as an underscore, as the recorded keys of book/claims.yaml spell it."""
    book = ROOT / "book" / "claims_text.yaml"
    corruption = {"corruption": "gaussian noise", "base": "MaxPool", "best": "m=5"}
    layer = {"layer": "s1.pool", "stride": 2, "m_lo": 1, "m_hi": 5, "n_eval": 8}
    key = prose.claim("ch08_{corruption}_error_falls", corruption, file=book)["key"]
    layer = prose.claim("ch06_distance_falls_{layer}", layer, file=book)["key"]
    assert (key, layer) == ("ch08_gaussian_noise_error_falls", "ch06_distance_falls_s1_pool")


def test_bad_units_and_meanings_are_refused_by_name():
    with pytest.raises(ValueError, match="valid: 'pp', ''"):
        findings.Finding("k", "c", 0, 0, 0, "m", unit="%")
    with pytest.raises(ValueError, match="reproduced"):
        findings.Finding("k", "c", 0, 0, 0, "m", means={"yes": "x"})


def test_records_round_trip_through_a_results_file(tmp_path):
    found = [findings.by_seed("a", [0.1, 0.2]), findings.by_seed("b", [0.1]), findings.by_image("c", [1, 2, 3])]
    results.save(tmp_path, "07_x", "smoke", {}, {"verdicts": findings.save_all(found)})
    back = [f for _, f in findings.load_all(tmp_path)]
    assert [(f.key, f.verdict) for f in back] == [(f.key, f.verdict) for f in found]
    assert back[1].high == math.inf
    doc = json.loads((tmp_path / "07_x.json").read_text())
    assert doc["metrics"]["verdicts"][0]["verdict"] == found[0].verdict


def test_repeated_keys_are_refused():
    f = findings.by_seed("a", [0.1, 0.2])
    with pytest.raises(ValueError, match="repeat"):
        findings.save_all([f, f])


def test_disagreements_list_every_verdict_that_differs_or_is_missing():
    found = {"a": REPRODUCED, "b": UNRESOLVED, "c": REVERSED, "new": REPRODUCED}
    stated = {"a": REPRODUCED, "b": REPRODUCED, "c": UNRESOLVED, "gone": REVERSED}
    differences, new = findings.disagreements(found, stated)
    assert differences == ["gone: stated 'reversed', not measured",
                           "b: stated 'reproduced', measured 'not resolved at this budget'",
                           "c: stated 'not resolved at this budget', measured 'reversed'"]
    assert new == ["new"]


def test_two_runs_agree_only_where_they_reach_the_same_verdict():
    found = {"same": REVERSED, "lost": UNRESOLVED, "gained": REPRODUCED, "flipped": REVERSED, "new": REPRODUCED}
    stated = {"same": REVERSED, "lost": REPRODUCED, "gained": UNRESOLVED, "flipped": REPRODUCED}
    assert findings.agreed(found, stated) == {"same": REVERSED, "lost": UNRESOLVED, "gained": UNRESOLVED,
                                              "flipped": UNRESOLVED, "new": REPRODUCED}
    assert findings.agreed({"check": findings.PASSES}, {"check": findings.FAILS}) == {"check": findings.FAILS}


def test_table_reads_as_words():
    t = findings.table([findings.by_seed("rises_{shift}", [0.1, 0.12], **RISES)])
    assert list(t.columns) == ["paper", "measured (95 % interval)", "verdict", "kind", "method"]
    assert t.loc["Consistency rises", "paper"] == "+1.7 pp"


def test_by_image_names_the_item_it_pairs_by():
    assert findings.by_image("k", [0.1, 0.2, 0.3]).method == "paired by image, bootstrap, n = 3"
    assert findings.by_image("k", [0.1, 0.2], item="scene").method == "paired by scene, bootstrap, n = 2"


# ------------------------------------------------------------------ p-values, multiplicity, equivalence, checks

@pytest.mark.parametrize("t, df, expected", [(0.0, 4, 0.5), (2.776, 4, 0.975), (-2.776, 4, 0.025), (1.96, 1000, 0.975),
                                             (12.706, 1, 0.975), (-math.inf, 3, 0.0)])
def test_t_cdf_matches_the_printed_table_on_both_sides(t, df, expected):
    assert findings.t_cdf(t, df) == pytest.approx(expected, abs=2e-4)


def test_t_test_p_value_agrees_with_the_interval():
    """p < 0.05 exactly when the 95 % t interval excludes zero (same t distribution, same df)."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        v = rng.normal(rng.normal(0, 0.5), 1, 5)
        p, _ = findings.t_tests(v)
        _, low, high = findings.t_interval(v)
        if abs(p - 0.05) > 1e-3:
            assert (p < 0.05) == (low > 0 or high < 0)


def test_holm_by_hand():
    assert findings.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert findings.holm([0.5]) == [0.5]
    assert findings.holm([0.001, 0.9]) == pytest.approx([0.002, 0.9])


def test_claims_are_decided_by_their_holm_adjusted_p_value_within_their_family():
    """Alone, a claim at p ≈ 0.03 is reproduced; in a family of two primary claims at p ≈ 0.03 neither is, while an
    exploratory claim, alone in its family, keeps its verdict; two exploratory claims form their own family."""
    diffs = [0.021, 0.0, 0.01, 0.03, 0.015]                 # mean 0.0152, p ≈ 0.03 on 4 df
    p = findings.t_tests(diffs)[0]
    assert 0.025 < p < 0.05
    alone = findings.adjust([findings.by_seed("p1", diffs)])[0]
    assert alone.p_adjusted == pytest.approx(p) and alone.verdict == REPRODUCED and alone.family == "primary"
    two = findings.adjust([findings.by_seed("p1", diffs), findings.by_seed("p2", diffs), findings.by_seed("k", diffs)])
    assert [f.verdict for f in two] == [UNRESOLVED, UNRESOLVED, REPRODUCED]
    assert two[0].p_adjusted == pytest.approx(2 * p) and two[2].p_adjusted == pytest.approx(p)
    assert two[2].family == "exploratory" and "Holm-adjusted p" in two[0].sentence()
    both = findings.adjust([findings.by_seed("p1", diffs), findings.by_seed("k", diffs), findings.by_seed("k2", diffs)])
    assert [f.verdict for f in both] == [REPRODUCED, UNRESOLVED, UNRESOLVED]
    assert both[1].p_adjusted == pytest.approx(2 * p) and both[0].p_adjusted == pytest.approx(p)


@pytest.mark.parametrize("diffs, expected", [
    ([0.001, -0.001, 0.0005, 0.0, -0.0005], findings.EQUIVALENT),     # tight around zero, inside ±0.5 pp
    ([0.02, 0.021, 0.019, 0.022, 0.018], findings.BETTER),            # a clear gain beyond the margin
    ([-0.02, -0.021, -0.019, -0.022, -0.018], findings.WORSE),
    ([0.01, -0.012, 0.004, -0.008, 0.011], UNRESOLVED),               # too wide to say either
])
def test_equivalence_claims_are_decided_by_two_one_sided_tests(diffs, expected):
    f = findings.by_seed("keeps", diffs)
    assert f.margin == 0.005 and f.verdict == expected
    if expected == findings.EQUIVALENT:
        assert f.p_equivalence < 0.05 and f.meaning() == "Same accuracy."


def test_equivalence_is_refused_when_the_interval_reaches_the_margin():
    """TOST at 5 % is the 90 % interval inside the margin: mean 0.4 pp whose 90 % interval reaches 0.55 pp is not
    equivalent within ±0.5 pp, and its 95 % interval above zero makes it better."""
    f = findings.by_seed("keeps", [0.003, 0.006, 0.002, 0.005, 0.004])
    assert f.p_equivalence > 0.05 and f.verdict == findings.BETTER


def test_checks_pass_or_fail_and_never_reproduce():
    assert findings.by_seed("rate", [0.1, 0.12, 0.09]).verdict == findings.PASSES
    assert findings.by_seed("rate", [0.0, 0.0, 0.0]).verdict == findings.FAILS
    assert findings.by_seed("chance", [0.004, -0.003, 0.002, 0.0, -0.001]).verdict == findings.PASSES
    assert findings.by_seed("chance", [0.1, 0.12, 0.09]).verdict == findings.FAILS
    assert findings.by_seed("chance", [0.01, -0.02, 0.005]).verdict == findings.FAILS     # too wide to say: not zero
    check = findings.by_seed("rate", [0.1, 0.12, 0.09])
    assert check.family == "check" and check.meaning() == "It changes."
    assert findings.adjust([check])[0].p_adjusted is None


def _coverage(n_seeds: int, n_images: int, sd_seed: float, sd_image: float, trials: int, rng) -> dict:
    """Coverage of the true effect (0.02) by three 95 % intervals on synthetic runs where it is known: per seed, the
    effect is 0.02 + a seed effect (training) + the mean of n_images image effects (the seed's own test images)."""
    mu = 0.02
    seed_effects = rng.normal(0, sd_seed, (trials, n_seeds))
    images = rng.normal(0, sd_image, (trials, n_seeds, n_images))
    per_seed = mu + seed_effects + images.mean(-1)
    hits = {"t over seeds": 0, "bootstrap over seeds": 0, "one seed, bootstrap over images": 0}
    for k in range(trials):
        _, low, high = findings.t_interval(per_seed[k])
        hits["t over seeds"] += low <= mu <= high
        _, low, high = findings.bootstrap_interval(per_seed[k], n_boot=1000, seed=k)
        hits["bootstrap over seeds"] += low <= mu <= high
        _, low, high = findings.bootstrap_interval(mu + seed_effects[k, 0] + images[k, 0], n_boot=1000, seed=k)
        hits["one seed, bootstrap over images"] += low <= mu <= high
    return {name: h / trials for name, h in hits.items()}


def test_the_interval_over_seeds_covers_the_truth_and_the_alternatives_do_not():
    """Why findings.py decides claims about training by a t interval over per-seed effects: on synthetic runs with
    seed and image variance (sd 1 pp between seeds; per image 13 pp, so 0.65 pp for a seed's 400 images) it covers
    the true effect 95 %
    of the time with 5 seeds; a percentile bootstrap over the same 5 seeds undercovers, and one network with a
    bootstrap over its images (the book's old rule) ignores the seed variance and covers far less."""
    coverage = _coverage(5, 400, 0.01, 0.13, 2000, np.random.default_rng(0))
    assert 0.935 <= coverage["t over seeds"] <= 0.965, coverage
    assert coverage["bootstrap over seeds"] < 0.90, coverage
    assert coverage["one seed, bootstrap over images"] < 0.80, coverage


def test_t_cdf_is_monotone_far_in_the_tail():
    """The CDF is integrated over θ = atan(t / √df), so it stays monotone and reaches 1 (a larger statistic never
    gets a larger p-value)."""
    values = [findings.t_cdf(t, df) for df in (1, 4) for t in (10.0, 100.0, 999.0, 2000.0, 1e6)]
    assert values[:5] == sorted(values[:5]) and values[5:] == sorted(values[5:])
    assert findings.t_cdf(2000.0, 1) == pytest.approx(1 - 1 / (2000 * math.pi), abs=1e-6)   # Cauchy: 1/2 + atan(t)/π
    assert findings.t_cdf(math.inf, 4) == pytest.approx(1.0, abs=1e-12) and findings.t_cdf(-math.inf, 4) < 1e-12


def test_equivalence_claims_correct_better_and_worse_for_the_family():
    """A primary equivalence claim's 'worse' is a second question: its two-sided p times the family's size must be below
    5 %, so a loss that one test alone would call is not resolved in a family of three."""
    loss = [-0.012, -0.004, -0.010, -0.002, -0.008]              # p ≈ 0.02 two-sided, 90 % interval beyond -0.5 pp
    alone = findings.by_seed("keeps", loss)
    assert alone.verdict == findings.WORSE and 0.01 < alone.p < 0.05 and "TOST 90 % interval" in alone.method
    primary = findings.replace(alone, primary=True)
    family = findings.adjust([primary, findings.replace(primary, key="k2"), findings.replace(primary, key="k3")])
    assert family[0].p_direction_adjusted == pytest.approx(3 * alone.p) and family[0].verdict == UNRESOLVED


def test_effects_that_are_not_finite_numbers_are_refused_by_name():
    with pytest.raises(ValueError, match="k: the effects must be finite"):
        findings.by_seed("k", [0.1, float("nan")])
    assert findings.by_image("k", [0.3]).verdict == UNRESOLVED          # one item decides nothing
