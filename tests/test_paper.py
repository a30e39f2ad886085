"""The paper profile's code paths, offline, on the CPU: CIFAR-10 from its pickled batches (small files in
the real format, written here), networks adapted to three channels and wider, and the CIFAR chapters
run end to end through the driver."""
import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
from fake_data import write_cifar10

from shiftlab import data, models, params, zoo

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
CIFAR_CHAPTERS = ("01_one_pixel", "02_why_subsampling", "06_internal_equivariance", "07_consistency_vs_filter",
                  "09_aps")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, n_per_batch=200)
    (root / "FashionMNIST").symlink_to(data._raw_dir(data.prepare_fashion_mnist()).parent)
    return root


def test_cifar10_batches_read_as_rgb_planes(cifar_root):
    train, test = data.load_cifar10("train", cifar_root), data.load_cifar10("test", cifar_root)
    assert train.images.shape == (1000, 3, 32, 32) and test.images.shape == (200, 3, 32, 32)
    assert train.classes[0] == "airplane" and train.labels.dtype == torch.long
    with open(cifar_root / data.CIFAR10_FOLDER / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    first = torch.as_tensor(batch[b"data"][0])
    assert torch.equal(train.images[0, 0].flatten(), first[:1024])        # red plane first, row by row
    assert torch.equal(train.images[0, 2].flatten(), first[2048:])
    x = train.as_float(32)
    assert x.shape == (1000, 3, 32, 32) and 0 <= x.min() and x.max() <= 1


def test_cifar10_missing_or_corrupt_is_one_clear_error(tmp_path, cifar_root):
    with pytest.raises(data.DatasetError, match="CIFAR-10 not found under .*run once with network access"):
        data.prepare_cifar10(tmp_path, download=False)
    broken = tmp_path / "broken"
    write_cifar10(broken, n_per_batch=4)
    (broken / data.CIFAR10_FOLDER / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(data.DatasetError, match="test_batch is not a readable CIFAR batch.*delete"):
        data.load_cifar10("test", broken)


def test_normalize_is_the_datasets_standardisation_and_not_a_named_layer():
    cfg = models.ModelConfig(in_channels=3, normalize="cifar10")
    net = models.build(cfg).eval()
    plain = models.build(models.ModelConfig(in_channels=3)).eval()
    plain.load_state_dict(net.state_dict())
    x = torch.rand(4, 3, 32, 32)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in data.NORMALISATION["cifar10"])
    torch.testing.assert_close(net(x), plain((x - mean) / std))
    assert [n for n, _ in net.forward_features(x)] == plain.layer_names
    with pytest.raises(ValueError, match="normalize='fashion_mnist' is invalid"):
        models.ModelConfig(normalize="fashion_mnist")


def test_zoo_adapts_networks_to_the_dataset_and_scale_and_keeps_book_keys():
    for name, entry in zoo.ENTRIES.items():
        assert zoo.adapted(entry.model) == entry.model, name          # the book's models (and cache keys) are unchanged
    wide = zoo.adapted(zoo.ENTRIES["maxblur3"].model, "cifar10", width_factor=4, convs_per_stage=2)
    assert (wide.in_channels, wide.normalize, wide.widths, wide.convs_per_stage) == (3, "cifar10", (64, 128, 256), 2)
    resnet = zoo.adapted(zoo.ENTRIES["resnet"].model, "cifar10", width_factor=2, convs_per_stage=2)
    assert resnet.widths == (32, 64, 128) and resnet.convs_per_stage == 1
    assert zoo.adapted(zoo.ENTRIES["c8"].model, "fashion_mnist", width_factor=4) == zoo.ENTRIES["c8"].model
    keys = {zoo.cache_key(zoo.full_config("baseline", 1000, 1, 0, dataset=d, width_factor=f))
            for d in ("fashion_mnist", "cifar10") for f in (1, 2)}
    assert len(keys) == 4


def test_a_canvas_network_trains_on_cifar10(cifar_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_DATA", str(cifar_root))
    net, info = zoo.get("canvas_vgg", n_train=1000, epochs=1, cache_dir=tmp_path, progress=False, dataset="cifar10")
    assert info["config"]["model"]["in_channels"] == 3 and info["config"]["data"]["dataset"] == "cifar10"
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_paper_profile_runs_on_a_gpu_with_cifar10_for_its_chapters(root):
    profile = params.load_profile("paper", root / "params")
    assert profile["common"]["device"] == "cuda" and profile["common"]["width_factor"] > 1
    for name in CIFAR_CHAPTERS:
        assert params.notebook_parameters(profile, name)["dataset"] == "cifar10", name
    with pytest.raises(params.ParameterError, match="width_factor=0 is invalid"):
        params.validate(width_factor=0)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path of the paper profile")
def test_a_cifar_chapter_runs_under_the_paper_profile_on_the_cpu(cifar_root, tmp_path):
    """Chapter 9 (the CIFAR-10 test set, trained and untrained networks adapted to three channels), run by the
    driver with the paper profile at a tiny size; chapters 1, 2, 6 and 7 go through the same helpers
    (chapter.load_test_set, zoo.prepare / for_chapter / adapted)."""
    small = ["-p", "device=cpu", "-p", "n_train=1000", "-p", "epochs=1", "-p", "n_test=64", "-p", "n_eval=16",
             "-p", "n_seeds=2", "-p", "width_factor=1", "-p", "convs_per_stage=1", "-p", "filt_size=3",
             "-p", "resnet18_seeds=1"]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "paper",
                           "--only", "09_aps", *small, "--root", str(tmp_path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env={**os.environ, "SHIFTLAB_DATA": str(cifar_root)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    saved = json.loads((tmp_path / "results" / "paper" / "09_aps.json").read_text())
    assert saved["params"]["dataset"] == "cifar10" and saved["profile"] == "paper"
    assert [r["network"] for r in saved["metrics"]["resnet18_runs"]] == ["Baseline", "BlurPool", "APS"]
    trained = [p.name for p in (tmp_path / "results" / "cache").glob("*.pt")]
    cache = tmp_path / "results" / "cache"
    assert trained and all(torch.load(cache / p, weights_only=True)["config"]["model"]["in_channels"] == 3
                           for p in trained)
