"""The model cache: trained once, reused, and never loaded when truncated, corrupt or foreign."""
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from shiftlab import zoo

SMALL = dict(n_train=256, epochs=1, seed=0)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def test_trains_once_then_loads(tmp_path):
    first, info1 = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    second, info2 = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert not info1["cached"] and info2["cached"] and info1["path"] == info2["path"]
    assert torch.equal(_weights(first), _weights(second))
    assert [p.name for p in tmp_path.glob("*.pt")] == [f"baseline-{zoo.cache_key(info1['config'])}.pt"]


def test_training_is_deterministic(tmp_path):
    a, _ = zoo.get("baseline", cache_dir=tmp_path / "a", progress=False, **SMALL)
    b, _ = zoo.get("baseline", cache_dir=tmp_path / "b", progress=False, **SMALL)
    assert torch.equal(_weights(a), _weights(b))


def test_key_depends_on_every_part_of_the_config():
    base = zoo.full_config("baseline", **SMALL)
    keys = {zoo.cache_key(base), zoo.cache_key(zoo.full_config("baseline", n_train=257, epochs=1, seed=0)),
            zoo.cache_key(zoo.full_config("baseline", n_train=256, epochs=2, seed=0)),
            zoo.cache_key(zoo.full_config("baseline", n_train=256, epochs=1, seed=1)),
            zoo.cache_key(zoo.full_config("baseline_aug", **SMALL)),
            zoo.cache_key({**base, "version": "0.0.0"})}
    assert len(keys) == 6


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint_is_retrained_with_a_warning(tmp_path, damage):
    _, info = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    path = tmp_path / info["path"].rsplit("/", 1)[-1]
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        middle = len(blob) // 2
        blob[middle:middle + 8] = bytes(b ^ 0xFF for b in blob[middle:middle + 8])
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="retraining baseline"):
        _, again = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert not again["cached"]
    _, third = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert third["cached"]


def test_checkpoint_for_another_config_is_refused(tmp_path):
    model, info = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    with pytest.raises(zoo.CacheError, match="another configuration"):
        zoo.load_checkpoint(info["path"], {**info["config"], "version": "0.0.0"})


def test_unknown_entry_lists_valid_names():
    with pytest.raises(KeyError, match="valid: baseline, baseline_aug, baseline_zeros, maxblur2"):
        zoo.full_config("densenet", **SMALL)


def test_models_trained_side_by_side_equal_models_trained_alone(tmp_path):
    """ensure() trains missing models in parallel worker processes, one CPU thread each; a model does
    not depend on whether it was trained in a worker or in the calling process."""
    size = dict(n_train=256, epochs=1)
    trained = zoo.ensure([("baseline", 0), ("baseline", 1), ("baseline", 0)], cache_dir=tmp_path / "pool",
                         workers=2, progress=False, **size)
    assert trained == 2
    assert zoo.ensure([("baseline", 1)], cache_dir=tmp_path / "pool", progress=False, **size) == 0
    pooled, info = zoo.get("baseline", seed=1, cache_dir=tmp_path / "pool", progress=False, **size)
    alone, _ = zoo.get("baseline", seed=1, cache_dir=tmp_path / "alone", progress=False, **size)
    assert info["cached"] and torch.equal(_weights(pooled), _weights(alone))


def test_antialiased_names_every_arm_of_chapter_7_and_refuses_the_rest():
    assert [zoo.antialiased(1), zoo.antialiased(5, True), zoo.antialiased(5, padding="zeros")] == \
        ["baseline", "maxblur5_aug", "maxblur5_zeros"]
    assert zoo.ENTRIES["maxblur5_zeros"].model.padding == "zeros"
    assert zoo.ENTRIES["canvas_gauss_gap"].model.fc_input == 0
    with pytest.raises(ValueError, match="valid: padding 'circular'"):
        zoo.antialiased(3, True, "zeros")


def test_chapter_3s_head_control_differs_from_the_jittered_net_only_in_its_head():
    fc, gap = zoo.ENTRIES["canvas_gauss"], zoo.ENTRIES["canvas_gauss_gap"]
    assert fc.model.fc_input > 0 and gap.model.fc_input == 0
    assert replace(fc.model, fc_input=0) == gap.model
    assert (fc.canvas, fc.max_train, fc.augment) == (gap.canvas, gap.max_train, gap.augment)


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    """Two notebooks run side by side may ask for the same model at once: one trains it under the
    model's lock, the other waits for the lock and then finds it cached."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    config = zoo.full_config("baseline", **SMALL)
    path = str(zoo.model_path(tmp_path, config))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds = list(pool.map(zoo._train_to_cache, [config, config], [path, path]))
    assert sorted(s > 0 for s in seconds) == [False, True]
    _, info = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert info["cached"]


def test_ensure_trains_the_models_nobody_else_is_training_first(tmp_path):
    """A chapter whose next model is being trained by another process trains its other missing models
    meanwhile, then waits for that one: two chapters needing the same list keep both cores busy."""
    import threading
    import time

    busy, free = (zoo.full_config(name, **SMALL) for name in ("baseline", "baseline_aug"))
    busy_path, free_path = zoo.model_path(tmp_path, busy), zoo.model_path(tmp_path, free)
    with zoo._training_lock(busy_path):          # "another process" is training the first model
        worker = threading.Thread(target=zoo.ensure, args=([("baseline", 0), ("baseline_aug", 0)],),
                                  kwargs=dict(n_train=256, epochs=1, cache_dir=tmp_path, workers=1, progress=False))
        worker.start()
        deadline = time.monotonic() + 120
        while not free_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert free_path.exists() and not busy_path.exists()
        assert worker.is_alive()                 # now waiting for the busy model's lock
    worker.join(120)
    assert not worker.is_alive() and busy_path.exists()


def test_training_without_torchs_nan_fill_gives_the_same_weights(tmp_path, monkeypatch):
    """seed_everything turns off torch's NaN-filling of new tensors: no op reads memory it has not written,
    so the weights are those of a run with the filling on."""
    fast, _ = zoo.get("maxblur5", cache_dir=tmp_path / "fast", progress=False, **SMALL)
    assert torch.are_deterministic_algorithms_enabled() and not torch.utils.deterministic.fill_uninitialized_memory
    real_seed = zoo.seed_everything

    def seed_and_fill(seed):
        real_seed(seed)
        torch.utils.deterministic.fill_uninitialized_memory = True

    monkeypatch.setattr(zoo, "seed_everything", seed_and_fill)
    try:
        filled, _ = zoo.get("maxblur5", cache_dir=tmp_path / "filled", progress=False, **SMALL)
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = False
    assert torch.equal(_weights(fast), _weights(filled))


def test_info_names_the_weights_so_replaced_weights_are_a_new_model(tmp_path):
    _, info = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert info["weights"] == torch.load(info["path"], weights_only=True)["sha256"]
    other, _ = zoo.get("baseline", cache_dir=tmp_path / "other", progress=False, **{**SMALL, "seed": 1})
    # the same configuration, other weights
    zoo.save_checkpoint(Path(info["path"]), other, info["config"], info["history"])
    _, again = zoo.get("baseline", cache_dir=tmp_path, progress=False, **SMALL)
    assert again["key"] == info["key"] and again["weights"] != info["weights"]


def test_every_cpu_trains_in_float32_and_a_gpu_as_the_entry_asks():
    """One training precision on every CPU (with or without bfloat16 units), so two machines train the same
    function; a GPU trains the zoo's bfloat16 entries under bfloat16 autocast."""
    assert zoo.ENTRIES["baseline"].precision == "bf16" and zoo.ENTRIES["c8"].precision == "fp32"
    assert "precision" not in zoo.full_config("baseline", **SMALL)["train"]
    assert zoo.full_config("baseline", **SMALL, device="cuda")["train"]["precision"] == "bf16"
    assert "precision" not in zoo.full_config("c8", **SMALL, device="cuda")["train"]


def test_training_workers_and_kernels_allocate_large_maps_in_huge_pages(monkeypatch):
    """torch reads THP_MEM_ALLOC_ENABLE once per process: the processes started within the block get it, a value the
    user set is kept, and the environment is as before after the block."""
    from shiftlab import runtime
    monkeypatch.setenv(runtime.LARGE_PAGES_ENV, "x")   # recorded, so that pytest restores the session's own state
    monkeypatch.delenv(runtime.LARGE_PAGES_ENV)
    with runtime.large_pages_in_new_processes():
        assert os.environ[runtime.LARGE_PAGES_ENV] == "1"
    assert runtime.LARGE_PAGES_ENV not in os.environ
    monkeypatch.setenv(runtime.LARGE_PAGES_ENV, "0")
    with runtime.large_pages_in_new_processes():
        assert os.environ[runtime.LARGE_PAGES_ENV] == "0"
    assert os.environ[runtime.LARGE_PAGES_ENV] == "0"
