"""Binomial filters and the anti-aliased pooling layers match independent references."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab import layers, shifts

SIZES = range(1, 8)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _reference_blurpool(x, m, pad_mode):
    """Explicit pad (floor((m-1)/2), ceil((m-1)/2)) + depthwise conv with the binomial outer product, then
    [::2, ::2]."""
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


# --- filter names, frequency responses and aliased energy -----------------------------------------

def test_filter_names_follow_the_paper():
    names = [layers.filter_name(m) for m in SIZES]
    assert names == ["Delta-1", "Rect-2", "Tri-3", "Tri-4", "Bin-5", "Bin-6", "Bin-7"]
    with pytest.raises(ValueError, match=r"1\.\.7"):
        layers.filter_name(8)


def test_frequency_response_delta_is_flat_and_rect_is_cosine():
    omega, flat = layers.frequency_response(1, n=65)
    assert omega[0] == 0 and omega[-1] == pytest.approx(math.pi) and len(omega) == 65
    torch.testing.assert_close(flat, torch.ones(65, dtype=torch.float64), rtol=0, atol=1e-12)
    omega, rect = layers.frequency_response(2, n=65)
    torch.testing.assert_close(rect, torch.cos(omega / 2).abs(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("m", SIZES)
def test_frequency_response_is_binomial_cosine_power(m):
    omega, response = layers.frequency_response(m, n=101)
    torch.testing.assert_close(response, torch.cos(omega / 2).abs() ** (m - 1), rtol=0, atol=1e-7)
    assert response[0] == pytest.approx(1.0, abs=1e-7)


def test_aliased_energy_fraction_by_hand():
    assert layers.aliased_energy_fraction(1) == pytest.approx(0.5, abs=1e-12)
    # |cos(w/2)|^2 = (1 + cos w) / 2: (pi/4 - 1/2) / (pi/2) above pi/2
    assert layers.aliased_energy_fraction(2) == pytest.approx(0.5 - 1 / math.pi, abs=1e-7)


def test_aliased_energy_fraction_decreases_strictly_with_size():
    fractions = [layers.aliased_energy_fraction(m) for m in SIZES]
    assert all(a > b > 0 for a, b in zip(fractions, fractions[1:], strict=False))


@pytest.mark.parametrize("m", SIZES)
def test_aliased_energy_fraction_matches_numerical_integral(m):
    omega, response = layers.frequency_response(m, n=4097)
    energy = response ** 2
    upper = omega >= math.pi / 2
    numeric = torch.trapezoid(energy[upper], omega[upper]) / torch.trapezoid(energy, omega)
    assert layers.aliased_energy_fraction(m) == pytest.approx(numeric.item(), abs=1e-6)


def test_convblur_strided_equivalent_shares_weights():
    block = layers.ConvBlurPool(3, 5, filt_size=1, conv_padding="circular").eval()
    strided = block.strided_equivalent().eval()
    assert strided[0].weight is block[0].weight and strided[1] is block[1]
    assert strided[0].stride == (2, 2) and strided[0].padding_mode == "circular"
    x = _rand(2, 3, 10, 10)
    with torch.no_grad():
        torch.testing.assert_close(block(x), strided(x), rtol=0, atol=1e-6)


def test_circular_padding_that_wraps_twice_is_an_error_but_maxblurpool_on_a_row_works():
    with pytest.raises(ValueError, match="wraps more than once around a 1x8 map"):
        layers.pad2d(torch.zeros(1, 1, 1, 8), (0, 2, 0, 2), "circular")
    pool, x = layers.MaxBlurPool(2, 2, pad_mode="circular"), torch.randn(1, 2, 1, 8)
    torch.testing.assert_close(pool(x), pool[1](pool[0](x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pool", [layers.BlurPool(3, 5, pad_mode="reflect"),
                                  layers.MaxBlurPool(3, 3, pad_mode="circular"),
                                  layers.MaxBlurPool(3, 5, pad_mode="zeros")],
                         ids=["blur", "maxblur-circular", "maxblur-zeros"])
def test_blur_layers_run_in_float32_under_bf16_autocast(pool):
    x = _rand(2, 3, 16, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pool(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pool(x.float()), rtol=0, atol=0)


@pytest.mark.parametrize("m", [2, 3, 5, 7])
def test_blurpool_check_mean_invariance_holds_for_binomial_filters_and_fails_without_the_nyquist_zero(m):
    """A binomial filter of size >= 2 has A(π) = 0: every phase of the blurred map has the same mean, so BlurPool
    followed by global pooling is invariant to every circular shift. A filter with a response at π fails the check."""
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
    pool = layers.BlurPool(3, m, pad_mode="circular").double()
    assert pool.check_mean_invariance(x, atol=1e-12) < 1e-12
    pool.kernel[:, :, 0, 0] += 0.1          # taps that no longer sum to zero at Nyquist
    with pytest.raises(AssertionError, match="moves under shift"):
        pool.check_mean_invariance(x, atol=1e-12)
    with pytest.raises(ValueError, match="pad_mode='circular', stride 2, filt_size >= 2 and even map sizes"):
        layers.BlurPool(3, 1, pad_mode="circular").check_mean_invariance(x)
    with pytest.raises(ValueError, match="a 11x12 map"):
        layers.BlurPool(3, m, pad_mode="circular").check_mean_invariance(x[..., 1:, :])
