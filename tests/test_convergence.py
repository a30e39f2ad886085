"""The convergence record: per network and seed, the distance of the book's budget from the longest run
(shiftlab.convergence), its table (scripts/convergence.py), and what a chapter says of its networks."""
from types import SimpleNamespace

import pytest
from conftest import load_script

from shiftlab import convergence, prose


@pytest.fixture(scope="module")
def script():
    return load_script("convergence")


def accuracy(baseline_gaps: tuple[float, float], canvas_gaps: tuple[float, float]) -> dict:
    """Accuracies at 4 and 8 epochs, seeds 0 and 1, whose 8-epoch run is that many points above the 4-epoch one."""
    def net(gap0: float, gap1: float) -> dict:
        return {0: {4: 90.0, 8: 90.0 + gap0}, 1: {4: 89.5, 8: 89.5 + gap1}}
    return {"baseline": net(*baseline_gaps), "maxblur5": net(0.25, 0.5), "canvas_vgg": net(*canvas_gaps)}


BOOK = SimpleNamespace(profile="book", epochs=4, n_train=60000)


def test_gaps_are_per_network_and_seed_and_read_json_keys():
    gaps = convergence.gaps(accuracy((0.75, 0.5), (1.5, 1.25)), budget=4)
    assert gaps["baseline"] == pytest.approx({0: 0.75, 1: 0.5})
    assert gaps["canvas_vgg"] == pytest.approx({0: 1.5, 1: 1.25})
    assert convergence.gaps({"aps": {"0": {"4": 90.0, "8": 91.0, "2": 80.0}}}, 4) == {"aps": {"0": 1.0}}


def test_record_merges_a_seed_measured_again_and_keeps_the_others(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    assert record["seeds"] == [0, 1] and record["networks"]["canvas_vgg"]["n_train"] == 20000
    again = script.merge(record, {"canvas_vgg": {1: {4: 80.0, 8: 80.25}}}, budget=4)
    assert again["networks"]["canvas_vgg"]["accuracy"]["1"] == {"4": 80.0, "8": 80.25}
    assert again["networks"]["canvas_vgg"]["accuracy"]["0"] == record["networks"]["canvas_vgg"]["accuracy"]["0"]
    assert again["networks"]["baseline"] == record["networks"]["baseline"]
    assert script.merge(record, {"aps": {0: {2: 1.0, 4: 2.0}}}, budget=2)["networks"].keys() == {"aps"}


def test_table_has_a_row_per_network_and_seed_and_names_those_that_miss_the_rule(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    record["networks"]["maxblur5"]["accuracy"]["0"].pop("8")
    record["networks"]["maxblur5"]["accuracy"]["0"]["16"] = 91.0
    text = script.markdown(record)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 6
    assert rows[1].startswith("| `baseline`: MaxPool") and rows[1].endswith("| 1 | 89.50 | 90.00 | – | 0.50 |")
    assert "| 0 | 90.00 | – | 91.00 | 1.00 |" in rows[2]
    assert "1 of 3 networks miss it at some seed: `canvas_vgg`" in text


def test_a_chapter_says_which_of_its_networks_miss_the_rule(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    outcome, values = convergence.status(["baseline", "maxblur5"], BOOK, record)
    assert outcome == "within" and values["worst"] == pytest.approx(0.75) and values["seeds"] == "0, 1"
    outcome, values = convergence.status(["baseline", "canvas_vgg", "baseline"], BOOK, record)
    assert outcome == "short" and values["k"] == 1 and values["n"] == 2
    text = prose.outcome("convergence", outcome, values)
    assert "VGG-like, objects of 14-28 px anywhere (1.5 points)" in text and "MaxPool" not in text


def test_a_chapter_says_when_the_record_does_not_cover_it(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    assert convergence.status(["baseline", "aps"], BOOK, record) == ("unmeasured", {"missing": "aps"})
    smoke = SimpleNamespace(profile="smoke", epochs=1, n_train=512)
    longer = SimpleNamespace(**{**vars(BOOK), "epochs": 8})
    for other in (smoke, longer):
        outcome, values = convergence.status(["baseline"], other, record)
        assert outcome == "other_run"
        assert f"trains {other.epochs} epoch(s)" in prose.outcome("convergence", outcome, values)
    assert convergence.status(["baseline"], BOOK, None)[0] in ("other_run", "within", "short", "unmeasured")


def test_the_script_refuses_an_unknown_network_or_budget(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["--networks", "nope"])
    assert "unknown network(s) nope; valid: baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--networks", "baseline", "--budget", "3"])
    assert "--budget 3 must be one of --epochs [4, 8]" in capsys.readouterr().err


def test_a_network_that_now_trains_otherwise_reads_as_not_measured(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)
    record["networks"]["baseline"]["fingerprint"] = "measured-before"
    assert convergence.status(["baseline", "maxblur5"], BOOK, record) == ("unmeasured", {"missing": "baseline"})
    outcome, values = convergence.status(["baseline", "canvas_vgg"], BOOK, record)
    assert outcome == "short_unmeasured" and values["missing"] == "baseline" and values["k"] == 1
    text = prose.outcome("convergence", outcome, values)
    assert "(1.5 points)" in text and "Not measured as they now train: baseline" in text
    again = script.merge(record, {"baseline": {0: {4: 91.0, 8: 91.25}}}, budget=4)
    assert again["networks"]["baseline"]["accuracy"] == {"0": {"4": 91.0, "8": 91.25}}     # the old seeds are gone
    assert convergence.status(["baseline"], BOOK, again)[0] == "within"


def test_an_equivalence_claim_says_whether_its_arms_gain_alike_from_longer_training(script):
    record = script.merge(None, accuracy((0.75, 0.5), (1.5, 0.5)), budget=4)     # maxblur5 gains 0.25 and 0.5
    outcome, values = convergence.equivalence_budget("baseline", "maxblur5", 0.5, BOOK, record)
    assert outcome == "beyond" and values["worst"] == pytest.approx(0.5) and values["seeds"] == "0, 1"
    assert "up to 0.50 points" in prose.outcome("equivalence_budget", outcome, values)
    outcome, values = convergence.equivalence_budget("baseline", "maxblur5", 1.0, BOOK, record)
    assert outcome == "within" and "±1.0-point margin" in prose.outcome("equivalence_budget", outcome, values)
    record["networks"]["maxblur5"]["fingerprint"] = "measured-before"
    assert convergence.equivalence_budget("baseline", "maxblur5", 0.5, BOOK, record)[0] == "unmeasured"
    smoke = SimpleNamespace(profile="smoke", epochs=1, n_train=512)
    outcome, values = convergence.equivalence_budget("baseline", "maxblur5", 0.5, smoke, record)
    assert outcome == "other_run" and "1 epoch(s)" in prose.outcome("equivalence_budget", outcome, values)
