"""Results JSON: schema, atomic write, refusal of non-finite numbers."""
import json
import math

import pytest
import torch

from shiftlab import results


def test_round_trip_with_tensors(tmp_path):
    path = results.save(tmp_path, "nb", "smoke", {"seed": 0}, {"acc": torch.tensor(0.5), "grid": torch.eye(2)},
                        {"seconds": 1.0})
    doc = results.load(path)
    assert doc["metrics"] == {"acc": 0.5, "grid": [[1.0, 0.0], [0.0, 1.0]]}
    assert set(results.SCHEMA_KEYS) <= set(doc) and doc["profile"] == "smoke"
    assert [p.name for p in tmp_path.iterdir()] == ["nb.json"]


def test_non_finite_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        results.save(tmp_path, "nb", "smoke", {}, {"acc": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_incomplete_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="lacks the results keys"):
        results.load(path)
    path.write_text("{truncated")
    with pytest.raises(ValueError, match="not a readable results JSON"):
        results.load(path)


def test_machine_specific_folders_are_not_results(tmp_path):
    doc = results.load(results.save(tmp_path, "nb", "smoke", {"seed": 0, "results_dir": "/x", "fig_dir": "/y"}, {}))
    assert doc["params"] == {"seed": 0}


def test_edited_or_corrupted_results_are_detected(tmp_path):
    path = results.save(tmp_path, "nb", "smoke", {}, {"acc": 0.5})
    path.write_text(path.read_text().replace("0.5", "0.9"))
    with pytest.raises(ValueError, match="does not match its sha256"):
        results.load(path)
