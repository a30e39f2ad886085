"""The shift explorer's data: packing, the grids against the shifts they stand for, the images it picks, the page."""
import base64
import json

import numpy as np
import pytest
import torch

from shiftlab import explorer, models, shifts


def _net(downsample: str = "max", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.build(models.ModelConfig(downsample=downsample, padding="circular", widths=(4, 8, 8))).eval()


def _images(n: int = 5, seed: int = 0, side: int = 32) -> torch.Tensor:
    x = torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed))
    return torch.where(x > 0.6, x, torch.zeros(()))


def test_pack_stores_thousandths_that_unpack_returns():
    p = torch.tensor([[0.0, 0.0004, 0.0006, 0.1234, 0.8756]])
    assert explorer.unpack(explorer.pack(p), (1, 5)).tolist() == [[0, 0, 1, 123, 876]]
    q = torch.rand(3, 4, 10, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(explorer.unpack(explorer.pack(q), (3, 4, 10)), np.round(q.double().numpy() * 1000))


def test_circular_grid_is_the_band_limited_shift_and_roll_at_whole_pixels():
    net, x = _net(), _images(3)
    grid = explorer.circular_grid(net, x, period=8, steps=4)
    assert grid.shape == (3, 32, 32, 10)
    with torch.no_grad():
        for dy, dx in [(0, 0), (3, 5), (7, 1)]:
            rolled = torch.softmax(net(torch.roll(x, (dy, dx), dims=(-2, -1))), -1)
            assert torch.allclose(grid[:, 4 * dy, 4 * dx], rolled, atol=1e-5)
        quarter = torch.softmax(net(shifts.fourier_shift(x, 1.25, 0.5)), -1)
        assert torch.allclose(grid[:, 5, 2], quarter, atol=1e-5)


def test_crop_grid_is_the_window_moved_over_the_frame():
    net, frames = _net(), _images(2, side=36)
    grid = explorer.crop_grid(net, frames, crop_max=2)
    assert grid.shape == (2, 5, 5, 10)
    with torch.no_grad():
        for dy, dx in [(-2, 1), (0, 0), (2, -2)]:
            moved = torch.softmax(net(frames[..., 2 - dy:34 - dy, 2 - dx:34 - dx]), -1)
            assert torch.allclose(grid[:, dy + 2, dx + 2], moved, atol=1e-6)


def test_aps_grid_does_not_change_at_whole_pixels_and_maxpool_does():
    x = _images(4)
    aps = explorer.circular_grid(_net("maxaps"), x, period=8, steps=2)[:, ::2, ::2]
    maxpool = explorer.circular_grid(_net("max"), x, period=8, steps=2)[:, ::2, ::2]
    assert (aps - aps[:, :1, :1]).abs().max() < 1e-5
    assert (maxpool - maxpool[:, :1, :1]).abs().max() > 1e-4


def test_pick_images_puts_the_most_changed_correct_images_first():
    # 4 images, a 2 x 2 period at 1 step: image 0 changes at 1 shift, image 1 at 3, image 2 never, image 3 is wrong
    top = torch.tensor([[[0, 0], [0, 1]], [[2, 0], [0, 0]], [[1, 1], [1, 1]], [[5, 5], [5, 5]]])
    circular = torch.nn.functional.one_hot(top, 10).float()
    labels = torch.tensor([0, 2, 1, 4])
    assert explorer.pick_images(circular, labels, steps=1, n_flip=2, n_other=5) == [1, 0, 2]
    assert explorer.pick_images(circular, labels, steps=1, n_flip=1, n_other=1) == [1, 0]


def test_data_and_page_are_self_contained():
    nets = {"MaxPool": _net(), "APS": _net("maxaps")}
    frames = _images(6, side=34)
    with torch.no_grad():
        labels = nets["MaxPool"](frames[..., 1:33, 1:33]).argmax(-1)   # every image "right", so every one qualifies
    payload = explorer.data(nets, frames, labels, [f"class {k}" for k in range(10)], period=8, steps=2, n_flip=2,
                            n_other=1)
    n = len(payload["images"])
    assert payload["networks"] == ["MaxPool", "APS"] and 1 <= n <= 3
    assert payload["shapes"] == {"circular": [2, n, 16, 16, 10], "crop": [2, n, 3, 3, 10]}
    grid = explorer.unpack(payload["circular"], tuple(payload["shapes"]["circular"]))
    assert np.abs(grid.sum(-1) - 1000).max() <= 5                 # thousandths of probabilities
    page = explorer.page_html(payload)
    assert page.count("<script>") == 2 and "src=" not in page and "fetch(" not in page and "http" not in page
    assert "</script" not in page.split("<script>")[1].rsplit("</script>", 1)[0]      # the data cannot close its tag
    shown = json.loads(page.split("window.SHIFTLAB_EXPLORER = ")[1].split(";</script>")[0])
    assert np.array_equal(explorer.decompress(shown["circular"]), grid.ravel())           # the page gets the same data
    assert np.array_equal(explorer.decompress(shown["crop"]),
                          explorer.unpack(payload["crop"], tuple(payload["shapes"]["crop"])).ravel())
    for key in ("pixels", "frame"):
        assert [list(base64.b64decode(im[key])) for im in shown["images"]] == [im[key] for im in payload["images"]]
    assert payload["crop_max"] == 1 and len(payload["images"][0]["frame"]) == 34 * 34


def test_compress_keeps_every_thousandth_and_shrinks_runs():
    q = torch.zeros(4, 256, 10)
    q[..., 3] = 1.0
    q[0, :5] = torch.rand(5, 10, generator=torch.Generator().manual_seed(0))
    text = explorer.pack(q)
    assert np.array_equal(explorer.decompress(explorer.compress(text)), explorer.unpack(text, (4, 256, 10)).ravel())
    assert len(explorer.compress(text)) < len(text) / 10


@pytest.mark.parametrize("steps", [0, -2])
def test_circular_grid_refuses_a_step_count_below_one(steps):
    with pytest.raises(ValueError, match="steps"):
        explorer.circular_grid(_net(), _images(1), period=8, steps=steps)
