"""The chapter run: parameters, timer, models and their training times, cached measurements, verdicts, results file;
and texts glued by outcome."""
from types import SimpleNamespace

import pytest

from shiftlab import chapter, evalcache, findings, prose, results, runtime, zoo


@pytest.fixture
def glued(monkeypatch):
    """What the run glues, recorded instead of displayed (there is no notebook here)."""
    out = {}
    monkeypatch.setattr(chapter, "glue", lambda name, value: out.__setitem__(name, value))
    return out


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run of a chapter '07_x' whose zoo models are stand-ins with two epochs of 1.5 s and 2 s."""
    monkeypatch.setattr(runtime, "set_threads", lambda *a, **k: None)      # unit tests keep one thread
    epochs = [{"seconds": 1.5}, {"seconds": 2.0}]
    def for_chapter(name, cfg, device, seed=None):
        s = cfg.seed if seed is None else seed
        return f"net {name}", {"key": f"{name}:{s}", "history": epochs, "weights": f"sha of {name}:{s}",
                               "config": {"train": {"seed": s}}}
    monkeypatch.setattr(zoo, "for_chapter", for_chapter)
    namespace = {"profile": "smoke", "seed": 0, "device": "cpu", "results_dir": str(tmp_path / "results"),
                 "fig_dir": str(tmp_path / "figures"), "cache_dir": str(tmp_path / "cache"), "n_test": 50, "n_eval": 8,
                 "max_shift": 4, "n_train": 512, "epochs": 1, "some_local": "not a parameter"}
    return chapter.run(namespace, "07_x")


def test_the_run_holds_the_checked_parameters_and_device(run):
    assert (run.cfg.n_test, run.cfg.max_shift, str(run.device), run.notebook) == (50, 4, "cpu", "07_x")
    assert not hasattr(run.cfg, "some_local")


def test_models_record_their_training_time_by_name_and_seed(run):
    net, info = run.model("baseline")
    assert net == "net baseline" and info["key"] == "baseline:0"
    run.model("aps", seed=1)
    run.model("aps", seed=1)                      # loaded again: the same entry
    assert run.train_seconds == {"baseline": 3.5, "aps/seed1": 3.5}
    assert run.models == {"baseline/seed0": {"key": "baseline:0", "weights": "sha of baseline:0"},
                          "aps/seed1": {"key": "aps:1", "weights": "sha of aps:1"}}


def test_a_measurement_is_cached_under_the_protocol_the_notebooks_spelled_out(run):
    calls = []
    info = {"key": "baseline:0"}
    assert run.protocol("n_eval", "max_shift", diagonal=True) == {"n_test": 50, "seed": 0, "n_eval": 8, "max_shift": 4,
                                                                  "diagonal": True, "test_order": chapter.TEST_ORDER}
    def measure(value):
        return lambda: calls.append(1) or value

    assert run.cached(info, "consistency", measure(0.75), "n_eval", "max_shift", diagonal=True) == 0.75
    assert run.cached(info, "consistency", measure(0.0), "n_eval", "max_shift", diagonal=True) == 0.75
    assert calls == [1]
    by_hand = {"n_test": 50, "n_eval": 8, "max_shift": 4, "seed": 0, "diagonal": True,     # the protocol, spelled out
               "test_order": chapter.TEST_ORDER}
    assert evalcache.cached(run.cfg.cache_dir, info, "consistency", by_hand, lambda: pytest.fail("recomputed")) == 0.75


def test_save_writes_the_results_file_with_verdicts_and_timings(run, glued, capsys):
    a, b = findings.Finding("a", "A", 0.1, 0.05, 0.2, "m"), findings.Finding("b", "B", -0.1, -0.2, -0.05, "m")
    a_again = findings.Finding("a", "A", 0.2, 0.1, 0.3, "m")
    table = run.verdicts([a])
    assert list(table.index) == ["A"] and glued["a_verdict"] == findings.REPRODUCED and glued["a_means"] == a.sentence()
    run.verdicts([b, a_again])                    # a cell run again replaces its findings, in their first place
    run.model("baseline")
    run.save({"runs": [1, 2]})
    assert capsys.readouterr().out == "results written to 07_x.json in the profile's results folder\n"
    doc = results.load(f"{run.cfg.results_dir}/07_x.json")
    assert doc["notebook"] == "07_x" and doc["profile"] == "smoke" and doc["params"]["n_eval"] == 8
    assert doc["metrics"] == {"runs": [1, 2], "verdicts": findings.save_all([a_again, b])}
    assert set(doc["timings"]) == {"notebook_seconds", "train_seconds"} and doc["timings"]["notebook_seconds"] > 0
    assert doc["timings"]["train_seconds"] == {"baseline": 3.5}
    assert doc["models"] == {"baseline/seed0": {"key": "baseline:0", "weights": "sha of baseline:0"}}


def test_a_run_without_models_or_verdicts_saves_only_its_metrics_and_time(run):
    run.save({"x": 1.0})
    doc = results.load(f"{run.cfg.results_dir}/07_x.json")
    assert doc["metrics"] == {"x": 1.0} and list(doc["timings"]) == ["notebook_seconds"]


def test_glue_text_glues_the_variant_of_the_outcome(glued, tmp_path, monkeypatch):
    path = tmp_path / "claims_text.yaml"
    path.write_text("outcomes:\n  lattice_means:\n    exact: Exact on a lattice of {S} px.\n    inexact: Not exact.\n")
    monkeypatch.setattr(prose, "path", lambda: path)
    chapter.glue_text("lattice_means", "exact", S=8)
    assert glued == {"lattice_means": "Exact on a lattice of 8 px."}
    with pytest.raises(prose.ProseError, match="valid: exact, inexact"):
        chapter.glue_text("lattice_means", "nearly", S=8)


def test_a_chapter_decides_each_family_of_claims_as_one_holm_family(run, glued):
    """run.verdicts adjusts the primary claims it is given together, and the exploratory ones apart; a family split
    over two calls would make two families, and is refused."""
    def primary(key, p):
        return findings.Finding(key, key.upper(), 0.1, 0.05, 0.2, "m", primary=True, p=p)

    exploratory = findings.Finding("c", "C", 0.1, 0.05, 0.2, "m", p=0.04)
    table = run.verdicts([primary("a", 0.02), primary("b", 0.04), exploratory])
    assert glued["a_verdict"] == glued["b_verdict"] == findings.REPRODUCED          # Holm: 0.04 and 0.04 < 0.05
    assert [run.found[k].p_adjusted for k in "abc"] == [pytest.approx(0.04), pytest.approx(0.04), pytest.approx(0.04)]
    assert list(table["kind"]) == ["primary", "primary", "exploratory"]
    run.verdicts([primary("a", 0.02), primary("b", 0.04), exploratory])   # the same families again (a cell rerun)
    with pytest.raises(ValueError, match="decide all primary claims of a chapter in one run.verdicts call"):
        run.verdicts([primary("d", 0.01)])
    with pytest.raises(ValueError, match="decide all exploratory claims of a chapter in one run.verdicts call"):
        run.verdicts([findings.Finding("e", "E", 0.1, 0.05, 0.2, "m", p=0.01)])


def test_per_seed_averages_each_seeds_images_over_the_runs_seeds(run):
    assert run.seeds == [0]
    run.cfg.n_seeds = 3
    assert run.seeds == [0, 1, 2]
    assert run.per_seed(lambda s: [s, s + 1.0]) == [0.5, 1.5, 2.5]


def test_save_states_the_convergence_of_every_network_the_chapter_prepared_once(run, glued, monkeypatch):
    monkeypatch.setattr(zoo, "prepare", lambda *a, **k: 0)
    run.prepare(["baseline", "aps"], seeds=[0, 1])
    run.prepare(["resnet18"], seeds=[])                            # no seeds: trains nothing, states nothing
    run.prepare(["baseline", "maxblur5"])
    assert run.trained == ["baseline", "aps", "maxblur5"] and "convergence" not in glued
    run.save({})
    assert "convergence" in glued                                  # the smoke run: the record is the book's
    assert glued["convergence"].startswith("This run trains 1 epoch(s) on 512 images")


def test_save_states_whether_each_named_equivalence_claim_rests_on_the_budget(run, glued):
    found = [findings.by_seed("ch07_blur_keeps_accuracy", [0.001, -0.002, 0.0, 0.001, 0.002], m_lo=1, m_hi=5,
                              zhang_m=5, zhang_acc=0.01)]
    run.verdicts(found)
    run.equivalence_arms("ch07_blur_keeps_accuracy", "baseline", "maxblur5")
    run.save({})
    assert glued["ch07_blur_keeps_accuracy_budget"].startswith("This run trains 1 epoch(s) on 512 images")
    run.equivalence_arms("ch07_consistency_rises_crop", "baseline", "maxblur5")
    with pytest.raises(ValueError, match="not an equivalence claim this chapter decided; valid: ch07_blur_keeps"):
        run.save({})


def test_a_book_chapter_says_which_verdicts_a_redesigned_protocol_changed(monkeypatch):
    found = [findings.by_seed("ch07_consistency_rises_crop", [0.01, 0.02, 0.015, 0.01, 0.02], m_lo=1, m_hi=5,
                              zhang_m=5, zhang_cons=0.03),
             findings.by_seed("ch07_consistency_rises_circular", [0.01, 0.02, 0.015, 0.01, 0.02], m_lo=1, m_hi=5)]
    entries = prose.load()["claims"]
    same = {k: {"protocol": entries[k]["protocol"]} for k in ("ch07_consistency_rises_crop",
                                                                "ch07_consistency_rises_circular")}
    stated = {"ch07_consistency_rises_crop": "reversed", "ch07_consistency_rises_circular": "reversed"}
    assert findings.protocol_changes(found, same, stated, entries) == []            # same protocols: nothing to say
    moved = {**same, "ch07_consistency_rises_crop": {"protocol": "crop shifts over a black frame"}}
    assert findings.protocol_changes(found, moved, stated, entries) == [
        {"claim": found[0].claim, "before": "reversed", "now": "reproduced"}]
    recorded = {**same, "ch07_consistency_rises_crop": {**same["ch07_consistency_rises_crop"],
                                                         "previous": {"protocol": "old", "stated": "reversed"}}}
    assert findings.protocol_changes(found, recorded, {"ch07_consistency_rises_crop": "reproduced"}, entries) == [
        {"claim": found[0].claim, "before": "reversed", "now": "reproduced"}]
    assert chapter.protocol_change(found, SimpleNamespace(profile="smoke"))[0] == "other_run"
    text = prose.outcome("protocol_change", "changed", {"changed": findings.protocol_changes(found, moved, stated,
                                                                                             entries), "k": 1})
    assert "1 verdict(s)" in text and ": reversed before, reproduced now" in text


def test_a_second_seed_sets_verdict_of_another_protocol_is_not_compared():
    ours = [findings.Finding(key, key, 0.01, 0.0, 0.02, "by seed", protocol=protocol)
            for key, protocol in (("crop", "window over the mosaic"), ("circular", "roll"), ("new", "x"))]
    measured = [("07_x", f) for f in ours]
    second = {"crop": "reversed", "circular": "reproduced", "new": "reproduced", "gone": "reproduced"}
    theirs = {"crop": "crop shifts over a black frame", "circular": "roll", "gone": "y"}
    assert findings.same_protocol(second, theirs, measured) == {"circular": "reproduced"}
    assert findings.same_protocol(second, {}, measured) == {}          # protocols not recorded: nothing compared


@pytest.mark.parametrize("value", [0.125, 3, "a glued sentence", True])
def test_glue_writes_what_myst_nb_reads(monkeypatch, value):
    import IPython.display
    import myst_nb.ext.glue as myst_glue

    ours, theirs = [], []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: ours.append((a, k)))
    monkeypatch.setattr(myst_glue, "ipy_display", lambda *a, **k: theirs.append((a, k)))
    chapter.glue("name", value)
    myst_glue.glue("name", value, display=False)
    assert ours == theirs and len(ours) == 1
