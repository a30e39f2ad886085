"""Profiles load and merge; a wrong parameter fails with one line naming it and the valid choices."""
import pytest

from shiftlab import params


def test_validate_accepts_good_values():
    cfg = params.validate(profile="smoke", seed=0, device="cpu", n_train=10, filt_size=3)
    assert cfg.filt_size == 3 and cfg.profile == "smoke"


@pytest.mark.parametrize("name, value, fragment", [
    ("filt_size", 9, "1..7"),
    ("filt_size", True, "1..7"),
    ("object_size", 60, "8..48"),
    ("epochs", -1, "integer >= 1"),
    ("dataset", "cifar100", "'fashion_mnist'"),
    ("device", "tpu", "'auto', 'cpu', 'cuda'"),
    ("profile", "huge", "'smoke', 'book', 'paper'"),
    ("seed", 1.5, "integer >= 0"),
    ("n_train", True, "integer >= 1"),
])
def test_invalid_value_names_parameter_and_choices(name, value, fragment):
    with pytest.raises(params.ParameterError) as err:
        params.validate(**{name: value})
    message = str(err.value)
    assert name in message and fragment in message and "\n" not in message


def test_unknown_name_lists_valid_names():
    with pytest.raises(params.ParameterError, match="unknown parameter 'n_trian'.*n_train"):
        params.validate(n_trian=3)


def test_collect_takes_known_names_from_namespace():
    cfg = params.collect({"seed": 1, "np": object(), "epochs": 2})
    assert vars(cfg) == {"seed": 1, "epochs": 2}


@pytest.mark.parametrize("profile", ["smoke", "book", "paper"])
def test_profiles_load_and_merge(root, profile):
    doc = params.load_profile(profile, root / "params")
    merged = params.notebook_parameters(doc, "00_background")
    assert merged["profile"] == profile and "n_eval" in merged and "n_train" in merged


def test_missing_profile_lists_available(root):
    with pytest.raises(params.ParameterError, match="valid: book, paper, smoke"):
        params.load_profile("nope", root / "params")


def test_cpu_budget_is_the_drivers_share(monkeypatch):
    from shiftlab import runtime

    monkeypatch.setenv(runtime.CORES_ENV, "1")
    assert runtime.cpu_budget() == 1
    monkeypatch.setenv(runtime.CORES_ENV, "999")
    assert runtime.cpu_budget() == runtime.cpu_count()
    monkeypatch.setenv(runtime.CORES_ENV, "half")
    with pytest.raises(ValueError, match="valid: a whole number of cores"):
        runtime.cpu_budget()
    monkeypatch.delenv(runtime.CORES_ENV)
    assert runtime.cpu_budget() == runtime.cpu_count()
