"""Mosaic frames and the window shift: a crop that moves over content (each item amid its neighbours), the networks
trained on such windows, and the done-when of a real crop: its moves are almost never a circular roll."""
import pytest
import torch

from shiftlab import data, shifts, zoo
from shiftlab.train import TrainConfig, augment_batch


def _items(n: int, side: int = 4) -> torch.Tensor:
    """Item i filled with the value i (N, 1, side, side)."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, side, side).clone()


def test_mosaic_frames_centre_each_item_among_its_successors_across_chunks():
    items = _items(4100)                      # more than one chunk of 4096
    frames = data.mosaic_frames(items, 8)     # 2 px of every neighbour around the 4-px item
    assert frames.shape == (4100, 1, 8, 8)
    for i in (0, 4095, 4096, 4099):
        f = frames[i, 0]
        assert torch.equal(f[2:6, 2:6], items[i, 0])
        assert f[0, 0] == (i + 1) % 4100 and f[0, 3] == (i + 2) % 4100 and f[4, 7] == (i + 5) % 4100
        assert f[7, 7] == (i + 8) % 4100
    assert torch.equal(data.mosaic_frames(items[:5], 12), data.mosaic(items[:5]))
    for side in (3, 13, 7):
        with pytest.raises(ValueError, match="valid: 4..12"):
            data.mosaic_frames(items[:5], side)


def test_class_mosaic_frames_surround_each_item_with_items_of_its_class():
    items, labels = _items(30), torch.arange(30) % 3          # item i has class i mod 3
    frames = data.mosaic_frames(items, 12, labels)
    for i in range(30):
        tiles = frames[i, 0, ::4, ::4]                          # one value per tile of the 3 x 3 mosaic
        assert tiles[1, 1] == i and torch.all(tiles.long() % 3 == i % 3)
        assert sorted(tiles.flatten().long().tolist()) == sorted((i + 3 * k) % 30 for k in range(9))
    with pytest.raises(ValueError, match=r"valid: \(30,\)"):
        data.mosaic_frames(items, 12, labels[:5])


def test_window_moves_the_content_and_refuses_to_leave_the_frame():
    frames = torch.randn(3, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    centre = shifts.window(frames, 0, 0, size=6)
    assert torch.equal(centre, frames[..., 3:9, 3:9])
    moved = shifts.window(frames, 2, -1, size=6)
    assert torch.equal(moved[..., 2:, :5], centre[..., :4, 1:])            # the content moved down 2, left 1
    per_image = shifts.window(frames, torch.tensor([0, 2, -3]), torch.tensor([1, 0, 3]), size=6)
    assert torch.equal(per_image[2], shifts.window(frames[2:], -3, 3, size=6)[0])
    wide = torch.randn(2, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(shifts.shift(wide, -4, 3, "window"), shifts.window(wide, -4, 3, size=shifts.WINDOW))
    with pytest.raises(ValueError, match="does not fit a 12x12 frame; valid: frames of side 6 \\+ 2k"):
        shifts.window(frames, 4, 0, size=6)
    with pytest.raises(ValueError, match="does not fit"):
        shifts.window(frames, 0, 0, size=7)


def test_a_window_over_fashion_mnist_mosaics_is_almost_never_a_roll():
    """Issue 31's criterion: for the crop protocol's offsets U{-4..4}^2, fewer than 5 % of (image, offset) pairs
    give the circular roll of the centred window (the 2-px black frame gave about half)."""
    items = data.load("fashion_mnist", "test").subset(1000, 0).as_float()
    frames = data.mosaic_frames(items, shifts.WINDOW + 8)
    centre = shifts.window(frames, 0, 0)
    padded = items.new_zeros(len(items), 1, 32, 32)
    padded[..., 2:30, 2:30] = items
    def equal(a: torch.Tensor, b: torch.Tensor) -> int:
        return (a == b).flatten(1).all(1).sum().item()

    same = {"window": 0, "black": 0}
    offsets = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5) if (dy, dx) != (0, 0)]
    for dy, dx in offsets:
        same["window"] += equal(shifts.window(frames, dy, dx), shifts.roll(centre, dy, dx))
        same["black"] += equal(shifts.translate(padded, dy, dx), shifts.roll(padded, dy, dx))
    n = len(items) * len(offsets)
    assert same["window"] / n < 0.05
    assert same["black"] / n > 0.3            # the old crop was mostly a roll


def test_training_sees_windows_of_the_frames():
    frames = torch.randn(16, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    centred = augment_batch(frames, TrainConfig(window=32), torch.Generator().manual_seed(0))
    assert torch.equal(centred, frames[..., 4:36, 4:36])
    cropped = augment_batch(frames, TrainConfig(window=32, augment="window"), torch.Generator().manual_seed(0))
    assert cropped.shape == (16, 1, 32, 32) and not torch.equal(cropped, centred)
    assert all(any(torch.equal(cropped[i], frames[i, :, 4 - dy:36 - dy, 4 - dx:36 - dx])
                   for dy in range(-4, 5) for dx in range(-4, 5)) for i in range(16))
    rolled = augment_batch(frames, TrainConfig(window=32, augment="roll"), torch.Generator().manual_seed(0))
    assert rolled.shape == (16, 1, 32, 32)
    with pytest.raises(ValueError, match="valid with window > 0"):
        TrainConfig(augment="window")
    with pytest.raises(ValueError, match="no frames"):
        TrainConfig(window=32, canvas=data.Canvas(48, 14, 28))


def test_the_32px_networks_train_and_test_on_mosaic_windows():
    config = zoo.full_config("baseline", 100, 1, 0)
    assert config["data"]["frame"] == "mosaic" and config["train"]["window"] == 32
    assert zoo.full_config("baseline_aug", 100, 1, 0)["train"]["augment"] == "window"
    assert "frame" not in zoo.full_config("canvas_vgg", 100, 1, 0)["data"]
    assert "window" not in zoo.full_config("c8", 100, 1, 0)["train"]
    split = data.load("fashion_mnist", "test").subset(20, 0)
    assert zoo.training_inputs(config, split).shape == (20, 1, 40, 40)
    x = zoo.test_inputs(config, split)
    assert torch.equal(x, data.mosaic_frames(split.as_float(), 40)[..., 4:36, 4:36])
