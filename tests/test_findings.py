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
                                              "paper", "means", "verdict"}
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


def test_disagreements_fail_only_on_contradicted_or_missing_claims():
    found = {"a": REPRODUCED, "b": UNRESOLVED, "c": REVERSED, "new": REPRODUCED}
    stated = {"a": REPRODUCED, "b": REPRODUCED, "c": UNRESOLVED, "gone": REVERSED}
    failures, new = findings.disagreements(found, stated)
    assert failures == ["gone: stated 'reversed', not measured",
                        "b: stated 'reproduced', measured 'not resolved at this budget'"]
    assert new == ["new"]


def test_two_runs_agree_only_where_they_reach_the_same_verdict():
    found = {"same": REVERSED, "lost": UNRESOLVED, "gained": REPRODUCED, "flipped": REVERSED, "new": REPRODUCED}
    stated = {"same": REVERSED, "lost": REPRODUCED, "gained": UNRESOLVED, "flipped": REPRODUCED}
    assert findings.agreed(found, stated) == {"same": REVERSED, "lost": UNRESOLVED, "gained": UNRESOLVED,
                                              "flipped": UNRESOLVED, "new": REPRODUCED}


def test_table_reads_as_words():
    t = findings.table([findings.by_seed("rises_{shift}", [0.1, 0.12], **RISES)])
    assert list(t.columns) == ["paper", "measured (95 % interval)", "verdict", "method"]
    assert t.loc["Consistency rises", "paper"] == "+1.7 pp"


def test_by_image_names_the_item_it_pairs_by():
    assert findings.by_image("k", [0.1, 0.2, 0.3]).method == "paired by image, bootstrap, n = 3"
    assert findings.by_image("k", [0.1, 0.2], item="scene").method == "paired by scene, bootstrap, n = 2"
