"""Circular and black-fill image shifts, crop-shifts, random offsets and diagonal paths."""
import pytest
import torch
import torch.nn.functional as F

from shiftlab import shifts


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 2), (-3, 5), (9, -11), (7, 0)])
def test_roll_matches_torch_roll(dy, dx):
    x = _rand(3, 2, 7, 9)
    assert torch.equal(shifts.roll(x, dy, dx), torch.roll(x, (dy, dx), dims=(2, 3)))


def test_roll_per_image_offsets():
    x = _rand(4, 2, 6, 8)
    dy, dx = torch.tensor([0, 1, -2, 7]), torch.tensor([3, -1, 0, 9])
    out = shifts.roll(x, dy, dx)
    for i in range(4):
        assert torch.equal(out[i], torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(1, 2)))


def test_translate_fills_zeros():
    x = torch.arange(1, 1 + 2 * 5 * 6, dtype=torch.float32).reshape(2, 1, 5, 6)
    out = shifts.translate(x, 2, -1)
    assert torch.equal(out[:, :, :2], torch.zeros(2, 1, 2, 6))
    assert torch.equal(out[:, :, :, -1:], torch.zeros(2, 1, 5, 1))
    assert torch.equal(out[:, :, 2:, :-1], x[:, :, :-2, 1:])
    # the bottom rows and left column of x left the frame
    assert not torch.isin(x[:, :, -2:], out).any()
    assert not torch.isin(x[:, :, :, 0], out).any()


def test_translate_per_image_offsets():
    x = _rand(3, 2, 6, 6)
    dy, dx = torch.tensor([1, -2, 0]), torch.tensor([0, 3, -1])
    out = shifts.translate(x, dy, dx)
    for i in range(3):
        assert torch.equal(out[i:i + 1], shifts.translate(x[i:i + 1], int(dy[i]), int(dx[i])))


def test_translate_zero_is_identity():
    x = _rand(2, 3, 5, 7)
    assert torch.equal(shifts.translate(x, 0, 0), x)


@pytest.mark.parametrize("dy, dx", [(2, 3), (-3, -2), (0, -3), (3, 1)])
def test_translate_equals_roll_with_black_border(dy, dx):
    x = torch.zeros(2, 2, 12, 12)
    x[:, :, 3:9, 3:9] = _rand(2, 2, 6, 6) + 5.0
    assert torch.equal(shifts.translate(x, dy, dx), shifts.roll(x, dy, dx))


@pytest.mark.parametrize("pad, oy, ox", [(0, 0, 0), (2, 0, 4), (3, 3, 3), (3, 6, 1), (4, 2, 7)])
def test_crop_shift_equals_pad_and_crop(pad, oy, ox):
    x = _rand(2, 3, 8, 10)
    h, w = x.shape[-2:]
    expected = F.pad(x, (pad, pad, pad, pad))[:, :, oy:oy + h, ox:ox + w]
    assert torch.equal(shifts.crop_shift(x, pad, oy, ox), expected)


def test_shift_dispatches_kinds():
    x = _rand(2, 1, 6, 6)
    assert torch.equal(shifts.shift(x, 2, -1, "roll"), shifts.roll(x, 2, -1))
    assert torch.equal(shifts.shift(x, 2, -1, "crop"), shifts.translate(x, 2, -1))


def test_shift_bad_kind_names_valid():
    with pytest.raises(ValueError, match="roll") as err:
        shifts.shift(torch.zeros(1, 1, 4, 4), 1, 1, "bogus")
    assert "crop" in str(err.value) and "bogus" in str(err.value)


@pytest.mark.parametrize("m", [0, 1, 3])
def test_random_offsets_in_range(m):
    dy, dx = shifts.random_offsets(500, m, torch.Generator().manual_seed(1))
    assert dy.shape == dx.shape == (500,)
    for d in (dy, dx):
        assert d.min() >= -m and d.max() <= m
        assert set(d.tolist()) == set(range(-m, m + 1))  # every value reached in 500 draws


def test_random_offsets_reproducible():
    a = shifts.random_offsets(50, 4, torch.Generator().manual_seed(7))
    b = shifts.random_offsets(50, 4, torch.Generator().manual_seed(7))
    c = shifts.random_offsets(50, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("kind", ["roll", "crop"])
def test_diagonal_path(kind):
    x = _rand(2, 3, 6, 7)
    path = shifts.diagonal_path(x, 4, kind)
    assert path.shape == (5, 2, 3, 6, 7)
    assert torch.equal(path[0], x)
    for d in range(5):
        assert torch.equal(path[d], shifts.shift(x, d, d, kind))
        if kind == "roll":
            assert torch.equal(path[d], shifts.roll(x, d, d))


def test_diagonal_path_default_is_roll():
    x = _rand(1, 1, 5, 5)
    assert torch.equal(shifts.diagonal_path(x, 2)[2], torch.roll(x, (2, 2), dims=(2, 3)))
