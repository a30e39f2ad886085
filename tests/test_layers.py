"""Binomial filters and the anti-aliased pooling layers match independent references."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab import layers, shifts

SIZES = range(1, 8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one CPU thread is faster and leaves the other core alone."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _reference_blurpool(x, m, pad_mode):
    """Explicit pad (floor((m-1)/2), ceil((m-1)/2)) + depthwise conv with the binomial outer product, then [::2, ::2]."""
    taps = torch.tensor([math.comb(m - 1, k) / 2 ** (m - 1) for k in range(m)], dtype=torch.float64)
    kernel = (taps[:, None] * taps[None, :]).float()
    lo, hi = math.floor((m - 1) / 2), math.ceil((m - 1) / 2)
    mode = "constant" if pad_mode == "zeros" else pad_mode
    padded = F.pad(x, (lo, hi, lo, hi), mode=mode)
    c = x.shape[1]
    full = F.conv2d(padded, kernel[None, None].repeat(c, 1, 1, 1), groups=c)
    return full[:, :, ::2, ::2]


@pytest.mark.parametrize("m", SIZES)
def test_binomial_taps(m):
    taps = layers.binomial_filter(m)
    expected = torch.tensor([math.comb(m - 1, k) / 2 ** (m - 1) for k in range(m)])
    assert taps.shape == (m,)
    torch.testing.assert_close(taps, expected, rtol=0, atol=0)
    assert taps.sum().item() == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("m", SIZES)
def test_binomial_2d_sums_to_one_and_symmetric(m):
    k = layers.binomial_filter_2d(m)
    assert k.shape == (m, m)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.T)
    assert torch.equal(k, k.flip(0).flip(1))


@pytest.mark.parametrize("m", [0, 8])
def test_binomial_bad_size_names_range(m):
    with pytest.raises(ValueError, match=r"1\.\.7"):
        layers.binomial_filter(m)


@pytest.mark.parametrize("pad_mode", layers.PAD_MODES)
@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("size", [32, 31])
def test_blurpool_matches_reference(size, m, pad_mode):
    x = _rand(2, 3, size, size, seed=size * 10 + m)
    out = layers.BlurPool(3, m, stride=2, pad_mode=pad_mode)(x)
    assert out.shape == (2, 3, math.ceil(size / 2), math.ceil(size / 2))
    torch.testing.assert_close(out, _reference_blurpool(x, m, pad_mode), rtol=0, atol=1e-6)


@pytest.mark.parametrize("pad_mode", [p for p in layers.PAD_MODES if p != "zeros"])
@pytest.mark.parametrize("m", SIZES)
def test_blurpool_keeps_constant(m, pad_mode):
    x = torch.full((1, 2, 15, 15), 0.7)
    out = layers.BlurPool(2, m, pad_mode=pad_mode)(x)
    torch.testing.assert_close(out, torch.full_like(out, 0.7), rtol=0, atol=1e-6)


@pytest.mark.parametrize("m", SIZES)
def test_blurpool_has_no_parameters(m):
    pool = layers.BlurPool(4, m)
    assert list(pool.parameters()) == []
    assert "kernel" not in pool.state_dict()


def test_blurpool_size1_is_subsampling():
    x = _rand(2, 3, 9, 10)
    assert torch.equal(layers.BlurPool(3, 1)(x), x[:, :, ::2, ::2])


def test_blurpool_bad_pad_mode_names_valid():
    with pytest.raises(ValueError, match="zeros, reflect, replicate, circular"):
        layers.BlurPool(3, 3, pad_mode="wrap")


@pytest.mark.parametrize("pad_mode", ["reflect", "circular"])
def test_maxblur_size1_equals_maxpool(pad_mode):
    x = _rand(2, 3, 12, 16)
    out = layers.MaxBlurPool(3, 1, pad_mode=pad_mode)(x)
    assert torch.equal(out, nn.MaxPool2d(2, 2)(x))


@pytest.mark.parametrize("pad_mode", layers.PAD_MODES)
def test_blurpool_size2_equals_avgpool(pad_mode):
    x = _rand(2, 3, 12, 16)
    out = layers.BlurPool(3, 2, pad_mode=pad_mode)(x)
    torch.testing.assert_close(out, nn.AvgPool2d(2, 2)(x), rtol=0, atol=1e-6)


def test_convblur_size1_equals_strided_conv():
    torch.manual_seed(0)
    block = layers.ConvBlurPool(3, 5, filt_size=1).eval()
    bn = block[1]
    bn.running_mean.copy_(torch.randn(5))
    bn.running_var.copy_(torch.rand(5) + 0.5)
    bn.weight.data.copy_(torch.randn(5))
    bn.bias.data.copy_(torch.randn(5))
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False)
    conv.weight.data.copy_(block[0].weight.data)
    reference = nn.Sequential(conv, bn, nn.ReLU()).eval()
    x = _rand(2, 3, 16, 16)
    with torch.no_grad():
        out, ref = block(x), reference(x)
    assert out.shape == ref.shape == (2, 5, 8, 8)
    assert (ref > 0).any() and (ref == 0).any()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("ky, kx", [(2, 4), (1, 0), (3, -5), (7, 7)])
def test_blurpool_circular_equivariant(m, ky, kx):
    x = _rand(2, 3, 16, 16, seed=m)
    blur = layers.BlurPool(3, m, pad_mode="circular")
    torch.testing.assert_close(blur(shifts.roll(x, 2 * ky, 2 * kx)), shifts.roll(blur(x), ky, kx),
                               rtol=0, atol=1e-6)
