"""Data: lookup order, clear errors, padding and canvas embedding."""
import gzip
import struct

import pytest
import torch

from shiftlab import data


def _idx_images(n: int) -> bytes:
    return struct.pack(">IIII", 0x803, n, 28, 28) + bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256)


def _idx_labels(n: int) -> bytes:
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def _write_debian(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for name in data.FASHION_MNIST_FILES:
        payload = _idx_images(n) if "images" in name else _idx_labels(n)
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(payload)


def test_debian_files_are_decompressed_into_torchvision_raw_folder(tmp_path, monkeypatch):
    _write_debian(tmp_path / "debian")
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    root = data.prepare_fashion_mnist(tmp_path / "root", download=False)
    raw = root / "FashionMNIST" / "raw"
    assert (raw / "train-labels-idx1-ubyte").read_bytes() == _idx_labels(4)
    assert not [p for p in raw.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_missing_everywhere_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "nothing")
    with pytest.raises(data.DatasetError) as err:
        data.prepare_fashion_mnist(tmp_path / "root", download=False)
    assert "apt-get install dataset-fashion-mnist" in str(err.value) and "download" in str(err.value)


def test_wrong_sized_dataset_is_an_error_not_a_silent_result(tmp_path, monkeypatch):
    _write_debian(tmp_path / "debian", n=4)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    with pytest.raises(data.DatasetError, match="expected \\(10000, 28, 28\\)"):
        data.load_fashion_mnist("test", tmp_path / "root")


def test_read_idx_by_hand(tmp_path):
    (tmp_path / "img").write_bytes(_idx_images(3))
    (tmp_path / "lab").write_bytes(_idx_labels(3))
    images, labels = data.read_idx(tmp_path / "img"), data.read_idx(tmp_path / "lab")
    assert images.shape == (3, 28, 28) and images.dtype == torch.uint8 and images[0, 0, :3].tolist() == [0, 1, 2]
    assert labels.tolist() == [0, 1, 2]


def test_truncated_dataset_file_is_a_clear_error(tmp_path, monkeypatch):
    _write_debian(tmp_path / "debian", n=4)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    raw = data.prepare_fashion_mnist(tmp_path / "root", download=False) / "FashionMNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_images(4)[:-10])
    with pytest.raises(data.DatasetError, match="could not be read.*header says.*delete that folder"):
        data.load_fashion_mnist("test", tmp_path / "root")


def test_real_fashion_mnist_matches_torchvision():
    from torchvision.datasets import FashionMNIST

    ours = data.load("fashion_mnist", "train")
    theirs = FashionMNIST(str(data.data_root()), train=True, download=False)
    assert torch.equal(ours.images, theirs.data) and torch.equal(ours.labels, theirs.targets)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"dataset": "mnist", "split": "train"}, "valid: fashion_mnist"),
    ({"dataset": "fashion_mnist", "split": "val"}, "valid: 'train', 'test'"),
])
def test_bad_names_are_clear(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        data.load(**kwargs)


def test_real_fashion_mnist_loads():
    test = data.load("fashion_mnist", "test")
    assert test.images.shape == (10000, 28, 28) and test.images.dtype == torch.uint8
    assert sorted(test.labels.unique().tolist()) == list(range(10))
    x = test.subset(50, seed=1).as_float(32)
    assert x.shape == (50, 1, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert x[:, :, :2].abs().sum() == 0, "padding must be black"
    assert torch.equal(test.subset(50, seed=1).labels, test.subset(50, seed=1).labels)


def test_pad_to_centres_and_refuses_shrinking():
    x = torch.ones(1, 1, 28, 28)
    y = data.pad_to(x, 32)
    assert y.shape[-1] == 32 and y[0, 0, 2:30, 2:30].eq(1).all() and y.sum() == 28 * 28
    with pytest.raises(ValueError, match="size must be >= 28"):
        data.pad_to(x, 20)


def test_embed_places_each_object_at_its_position():
    x = torch.arange(2 * 4, dtype=torch.float).reshape(2, 1, 2, 2) + 1
    out = data.embed(x, 8, torch.tensor([0, 5]), torch.tensor([3, 6]))
    assert torch.equal(out[0, 0, 0:2, 3:5], x[0, 0]) and torch.equal(out[1, 0, 5:7, 6:8], x[1, 0])
    assert out.sum() == x.sum()
    with pytest.raises(ValueError, match="0..6"):
        data.embed(x, 8, torch.tensor([0, 7]), torch.tensor([0, 0]))


def test_resize_keeps_range():
    x = torch.rand(3, 1, 28, 28)
    y = data.resize(x, 14)
    assert y.shape == (3, 1, 14, 14) and y.min() >= 0 and y.max() <= 1


def test_object_statistics_give_the_bounding_box_of_the_bright_pixels():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 3:8, 5:7] = 200
    images[1, 20, 20] = 10                       # below the threshold: no object
    stats = data.object_statistics(images)
    assert [stats[k][0].item() for k in ("top", "left", "height", "width")] == [3, 5, 5, 2]
    assert (stats["centroid_row"][0].item(), stats["centroid_col"][0].item()) == pytest.approx((5.0, 5.5))
    assert [stats[k][1].item() for k in ("top", "left", "height", "width")] == [0, 0, 0, 0]
