"""Evaluations are computed once per models, measurement and protocol, then read back."""
import pytest
import torch

from shiftlab import evalcache

INFO = {"key": "0123456789abcdef"}


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value
    return compute, calls


def test_computed_once_then_read_back(tmp_path):
    value = {"grid": torch.arange(6.0).reshape(2, 3), "acc": 0.5, "rows": [{"m": 1, "p": 0.25}]}
    compute, calls = _counting(value)
    first = evalcache.cached(tmp_path, INFO, "grid", {"n": 3, "seed": 0}, compute)
    second = evalcache.cached(tmp_path, INFO, "grid", {"n": 3, "seed": 0}, compute)
    assert len(calls) == 1
    assert torch.equal(second["grid"], value["grid"]) and second["acc"] == 0.5 and second["rows"] == first["rows"]


def test_key_depends_on_models_measurement_and_protocol(tmp_path):
    compute, calls = _counting(1.0)
    evalcache.cached(tmp_path, INFO, "acc", {"n": 3}, compute)
    evalcache.cached(tmp_path, INFO, "acc", {"n": 4}, compute)
    evalcache.cached(tmp_path, {"key": "fedcba9876543210"}, "acc", {"n": 3}, compute)
    evalcache.cached(tmp_path, INFO, "consistency", {"n": 3}, compute)
    assert len(calls) == 4


def test_damaged_result_is_recomputed_with_a_warning(tmp_path):
    compute, calls = _counting(torch.ones(3))
    evalcache.cached(tmp_path, INFO, "acc", {}, compute)
    path = next((tmp_path / "eval").iterdir())
    path.write_bytes(path.read_bytes()[:20])
    with pytest.warns(UserWarning, match="recomputing acc: .* is unreadable"):
        again = evalcache.cached(tmp_path, INFO, "acc", {}, compute)
    assert len(calls) == 2 and torch.equal(again, torch.ones(3))
    assert [p.name for p in (tmp_path / "eval").iterdir()] == [path.name]


def test_other_weights_under_the_same_configuration_are_measured_again(tmp_path):
    compute, calls = _counting(1.0)
    evalcache.cached(tmp_path, {**INFO, "weights": "a" * 64}, "acc", {"n": 3}, compute)
    evalcache.cached(tmp_path, {**INFO, "weights": "a" * 64}, "acc", {"n": 3}, compute)
    evalcache.cached(tmp_path, {**INFO, "weights": "b" * 64}, "acc", {"n": 3}, compute)
    assert len(calls) == 2
