"""Our BlurPool against the reference implementation (antialiased-cnns 0.3) and kornia's blur pools.

Mapping to antialiased_cnns.BlurPool(channels, pad_type, filt_size, stride, pad_off=0):
  pad_type 'refl' -> pad_mode 'reflect', 'repl' -> 'replicate', 'zero' -> 'zeros'; filt_size and
  stride mean the same; both pad (floor((m-1)/2), ceil((m-1)/2)) per axis and sample from index 0.

Mapping to kornia (read from kornia/filters/blur_pool.py):
  * kornia.filters.blur_pool2d(x, k, stride) / BlurPool2D(k, stride): the normalised Pascal
    (binomial) k x k kernel, always zero padding ((k-1)//2 before, k//2 after), sampled from index 0
    -> our BlurPool(c, k, stride, pad_mode='zeros'). Older kornia pads even k by (k-1)//2 on both
    sides, which drops the last output of an odd-sized input; those cases are skipped there.
  * kornia.filters.max_blur_pool2d(x, k) / MaxBlurPool2D(k): F.max_pool2d(x, 2, stride=1) without
    padding (H-1 rows), then blur_pool2d. Our DenseMax keeps H rows (one replicated row/column at
    the bottom/right), so the definitions agree on DenseMax(x)[..., :-1, :-1], blurred with zeros.

Zhang's MaxBlurPool recipe in antialiased-cnns is nn.MaxPool2d(2, stride=1) then BlurPool: the
same (H-1)-row dense max, so our MaxBlurPool matches it except in the last two output rows and
columns, which see our replicated border row; compared there on even sizes (same output shape).
"""
import pytest
import torch
from torch import nn

from shiftlab import layers

REASON = "cross-checks need the optional references: pip install -e '.[crosscheck]'"
antialiased_cnns = pytest.importorskip("antialiased_cnns", reason=REASON)
kornia = pytest.importorskip("kornia", reason=REASON)

SIZES = range(1, 8)
PAD_TYPES = {"refl": "reflect", "repl": "replicate", "zero": "zeros"}
CHANNELS = 3


def _rand(size: int, seed: int) -> torch.Tensor:
    return torch.randn(2, CHANNELS, size, size + 2, generator=torch.Generator().manual_seed(seed))


def _kornia_agrees_on_shape(out: torch.Tensor, ours: torch.Tensor, k: int) -> None:
    if out.shape != ours.shape and k % 2 == 0:
        pytest.skip(f"kornia {kornia.__version__} pads even kernels symmetrically (older convention)")


@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("pad_type", PAD_TYPES)
@pytest.mark.parametrize("m", SIZES)
def test_blurpool_matches_antialiased_cnns(m, pad_type, size):
    x = _rand(size, seed=10 * m + size)
    reference = antialiased_cnns.BlurPool(CHANNELS, pad_type=pad_type, filt_size=m, stride=2)
    ours = layers.BlurPool(CHANNELS, m, stride=2, pad_mode=PAD_TYPES[pad_type])
    expected = reference(x)
    assert ours(x).shape == expected.shape
    torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("m", SIZES)
def test_blurpool_matches_kornia(m, size):
    x = _rand(size, seed=20 * m + size)
    ours = layers.BlurPool(CHANNELS, m, stride=2, pad_mode="zeros")(x)
    functional = kornia.filters.blur_pool2d(x, m, stride=2)
    _kornia_agrees_on_shape(functional, ours, m)
    torch.testing.assert_close(ours, functional, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, kornia.filters.BlurPool2D(m, stride=2)(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("m", SIZES)
def test_dense_max_then_blurpool_matches_kornia_max_blur_pool(m, size):
    x = _rand(size, seed=30 * m + size)
    dense = layers.DenseMax()(x)[..., :-1, :-1]
    ours = layers.BlurPool(CHANNELS, m, stride=2, pad_mode="zeros")(dense)
    functional = kornia.filters.max_blur_pool2d(x, m)
    _kornia_agrees_on_shape(functional, ours, m)
    torch.testing.assert_close(ours, functional, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours, kornia.filters.MaxBlurPool2D(m)(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("pad_type", PAD_TYPES)
@pytest.mark.parametrize("m", SIZES)
def test_maxblurpool_matches_reference_recipe_inside(m, pad_type):
    x = _rand(16, seed=40 * m)
    recipe = nn.Sequential(nn.MaxPool2d(2, stride=1),
                           antialiased_cnns.BlurPool(CHANNELS, pad_type=pad_type, filt_size=m, stride=2))
    ours = layers.MaxBlurPool(CHANNELS, m, stride=2, pad_mode=PAD_TYPES[pad_type])(x)
    expected = recipe(x)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours[..., :-2, :-2], expected[..., :-2, :-2], rtol=0, atol=1e-6)
