"""The compiled dense max (Max_{2,1}) equals torch's max_pool2d(x, 2, 1): values, ties, NaN and gradients."""
import shutil

import pytest
import torch
import torch.nn.functional as F

from shiftlab import kernels, layers

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                    reason="no C++ compiler: the kernels cannot be built here")


@pytest.fixture
def fresh(monkeypatch):
    """kernels.compiled() re-evaluated under this test's environment, and again afterwards."""
    kernels.compiled.cache_clear()
    yield monkeypatch
    kernels.compiled.cache_clear()


def _maps(dtype, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, 9, 12, generator=g)
    x = torch.where(x > 0, x.round(), torch.zeros(())).to(dtype)   # ReLU-like zeros and integers: many ties
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@needs_compiler
def test_the_kernels_build_on_a_machine_with_a_compiler():
    assert kernels.compiled()


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dense_max_equals_max_pool2d_with_ties(dtype, channels_last):
    x = _maps(dtype, channels_last).requires_grad_()
    ours, torchs = kernels.dense_max(x), F.max_pool2d(x, 2, 1)
    assert ours.dtype == dtype and ours.shape == torchs.shape == (3, 5, 8, 11)
    assert torch.equal(ours, torchs)
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    got, = torch.autograd.grad((ours * weights).sum(), x)
    want, = torch.autograd.grad((torchs * weights).sum(), x)
    if dtype == torch.bfloat16:    # summed in float32 here, in bfloat16 steps by torch
        assert torch.allclose(got.float(), want.float(), rtol=1e-2, atol=1e-2)
    else:
        assert torch.equal(got, want)


@needs_compiler
def test_dense_max_lets_nan_win_as_max_pool2d_does():
    x = torch.rand(1, 2, 4, 4)
    x[0, 1, 2, 2] = float("nan")
    assert torch.allclose(kernels.dense_max(x), F.max_pool2d(x, 2, 1), rtol=0, atol=0, equal_nan=True)


@needs_compiler
@pytest.mark.parametrize("pad_mode", ["circular", "reflect", "zeros"])
def test_maxblurpool_and_aps_are_unchanged_by_the_kernels(fresh, pad_mode):
    x = torch.relu(torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(2))).requires_grad_()
    outs = {}
    for setting in ("on", "off"):
        fresh.setenv(kernels.KERNELS_ENV, setting)
        kernels.compiled.cache_clear()
        assert kernels.compiled() == (setting == "on")
        y = torch.cat([layers.MaxBlurPool(6, 3, pad_mode=pad_mode)(x).flatten(1),
                       layers.MaxApsPool(6, 1, pad_mode=pad_mode)(x).flatten(1)], 1)
        outs[setting] = (y, torch.autograd.grad(y.square().sum(), x)[0])
    assert torch.equal(outs["on"][0], outs["off"][0]) and torch.equal(outs["on"][1], outs["off"][1])


def test_a_failed_build_warns_and_falls_back(fresh):
    def no_compiler(**_):
        raise RuntimeError("Ninja is required to load C++ extensions")
    fresh.setenv(kernels.KERNELS_ENV, "on")
    fresh.setattr("torch.utils.cpp_extension.load", no_compiler)
    with pytest.warns(UserWarning, match="could not be built .*Ninja is required.*same values, slower"):
        assert not kernels.compiled()
    x = torch.rand(2, 3, 5, 5)
    assert torch.equal(kernels.dense_max(x), F.max_pool2d(x, 2, 1))


def test_a_bad_kernels_setting_names_the_valid_ones(fresh):
    fresh.setenv(kernels.KERNELS_ENV, "yes")
    with pytest.raises(ValueError, match="valid: on, off"):
        kernels.compiled()
