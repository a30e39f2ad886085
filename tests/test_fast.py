"""The accelerator (shiftlab.fast) computes what the plain layers compute. Its compiled ops equal torch's ops: the
dense max (Max_{2,1}) is max_pool2d(x, 2, 1) (values, ties, NaN and gradients); the fused ReLU . BN
[. MaxPool_{2,2}] is BatchNorm2d, ReLU and max_pool2d in training mode (outputs,
gradients and running statistics); the fused MaxBlurPool is the dense max, the padding (circular, or replicate and
reflect) and the blur convolution (outputs and gradients); the stem convolution is conv2d with one input channel
(outputs and the weight's gradient)."""
import contextlib
import copy
import shutil

import pytest
import torch
import torch.nn.functional as F

from shiftlab import fast, inference, layers, models
from shiftlab.fast import modules, ops

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                    reason="no C++ compiler: the kernels cannot be built here")


@pytest.fixture
def fresh(monkeypatch):
    """ops.compiled() re-evaluated under this test's environment, and again afterwards."""
    ops.compiled.cache_clear()
    yield monkeypatch
    ops.compiled.cache_clear()


@contextlib.contextmanager
def _threads(n: int):
    """torch on n threads within the block, and proof that the compiled ops' at::parallel_for uses them all (it
    runs on one thread when the extension was built without OpenMP)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        assert ops.parallel_threads() == n, "at::parallel_for did not use torch's threads (OpenMP build?)"
        yield
    finally:
        torch.set_num_threads(before)


def _maps(dtype, channels_last, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, 9, 12, generator=g)
    x = torch.where(x > 0, x.round(), torch.zeros(())).to(dtype)   # ReLU-like zeros and integers: many ties
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@needs_compiler
def test_the_kernels_build_on_a_machine_with_a_compiler():
    assert ops.compiled()


def test_every_checkout_of_the_same_kernels_builds_from_one_copy(tmp_path, monkeypatch):
    """The build's name and source paths depend on the sources' content and the torch installation, not on where the
    checkout is, so every checkout using one environment reuses one build; changed source gets another name."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = ops.extension_name(True)
    copied = ops.source_dir(name)
    assert copied == tmp_path / "shiftlab" / "kernel_sources" / name and ops.source_dir(name) == copied
    sources = [p for p in ops.CSRC.iterdir() if p.suffix in (".cpp", ".h")]
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in sources)
    assert all((copied / p.name).read_bytes() == p.read_bytes() for p in sources)
    other = tmp_path / "elsewhere"
    shutil.copytree(ops.CSRC, other)
    monkeypatch.setattr(ops, "CSRC", other)
    assert ops.extension_name(True) == name                       # same content, another place: the same build
    (other / "aps.cpp").write_text((other / "aps.cpp").read_text() + "\n// changed\n")
    assert ops.extension_name(True) != name and ops.extension_name(False) != ops.extension_name(True)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dense_max_equals_max_pool2d_with_ties(dtype, channels_last):
    x = _maps(dtype, channels_last).requires_grad_()
    ours, torchs = ops.dense_max(x), F.max_pool2d(x, 2, 1)
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
    assert torch.allclose(ops.dense_max(x), F.max_pool2d(x, 2, 1), rtol=0, atol=0, equal_nan=True)


@needs_compiler
@pytest.mark.parametrize("pad_mode", ["circular", "reflect", "zeros"])
def test_maxblurpool_and_aps_are_unchanged_by_the_kernels(fresh, pad_mode):
    x = torch.relu(torch.randn(4, 6, 8, 8, generator=torch.Generator().manual_seed(2))).requires_grad_()
    outs = {}
    for setting in ("on", "off"):
        fresh.setenv(ops.FAST_ENV, setting)
        ops.compiled.cache_clear()
        assert ops.compiled() == (setting == "on")
        y = torch.cat([fast.accelerate(layers.MaxBlurPool(6, 3, pad_mode=pad_mode))(x).flatten(1),
                       fast.accelerate(layers.MaxApsPool(6, 1, pad_mode=pad_mode))(x).flatten(1),
                       fast.accelerate(layers.MaxApsPool(6, 3, pad_mode=pad_mode))(x).flatten(1)], 1)
        outs[setting] = (y, torch.autograd.grad(y.square().sum(), x)[0])
    exact = pad_mode == "zeros"   # circular and reflect MaxBlurPool run fused: the blur sums in another order
    check = torch.equal if exact else lambda a, b: torch.allclose(a, b, rtol=1e-6, atol=1e-6)
    assert check(outs["on"][0], outs["off"][0]) and check(outs["on"][1], outs["off"][1])


def test_a_failed_build_warns_and_falls_back(fresh):
    def no_compiler(**_):
        raise RuntimeError("Ninja is required to load C++ extensions")
    fresh.setenv(ops.FAST_ENV, "on")
    fresh.setattr("torch.utils.cpp_extension.load", no_compiler)
    with pytest.warns(UserWarning, match="could not be built .*Ninja is required.*the same function, slower"):
        assert not ops.compiled()
    x = torch.rand(2, 3, 5, 5)
    assert torch.equal(ops.dense_max(x), F.max_pool2d(x, 2, 1))


def test_a_bad_accelerator_setting_names_the_valid_ones(fresh):
    fresh.setenv(ops.FAST_ENV, "yes")
    with pytest.raises(ValueError, match="valid: on, off"):
        ops.compiled()


def _bn_case(shape, dtype, seed=0):
    """A conv-like map with ties after the ReLU (rounded values) and a BatchNorm with weights of both signs."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 0.5).mul(4).round().div(4).to(dtype)
    bn = torch.nn.BatchNorm2d(shape[1])
    with torch.no_grad():
        bn.weight.uniform_(-1.5, 1.5, generator=g)
        bn.bias.uniform_(-0.5, 0.5, generator=g)
    return x.contiguous(memory_format=torch.channels_last), bn


def _run(x, bn, pool, grad_seed=1):
    """bn_relu's output, the gradients of a random projection of it, and bn's running statistics after it."""
    x = x.clone().requires_grad_()
    y = ops.bn_relu(x, bn, pool)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed)).to(y.dtype)
    grads = torch.autograd.grad((y * weights).sum(), [x, bn.weight, bn.bias])
    return y, grads, (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())


@needs_compiler
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("shape", [(8, 16, 12, 12), (4, 7, 6, 10), (6, 64, 4, 4)])
@pytest.mark.parametrize("pool", [False, True])
def test_fused_bn_relu_is_torchs_batchnorm_relu_and_maxpool(fresh, dtype, tol, shape, pool):
    x, bn = _bn_case(shape, dtype)
    reference = copy.deepcopy(bn)
    ours = _run(x, bn.train(), pool)
    with ops.torch_ops_only():
        torchs = _run(x, reference.train(), pool)
    y, grads, stats = ours
    assert y.dtype == dtype and y.shape == torchs[0].shape and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y.float(), torchs[0].float(), rtol=tol, atol=tol)
    for got, want in zip(grads, torchs[1], strict=True):
        assert got.dtype == want.dtype and torch.allclose(got.float(), want.float(), rtol=tol, atol=tol * 10)
    for got, want in zip(stats, torchs[2], strict=True):
        assert torch.allclose(got.float(), want.float(), rtol=1e-5, atol=1e-6)


@needs_compiler
def test_fused_bn_relu_gives_the_same_numbers_for_any_thread_count():
    x, bn = _bn_case((16, 32, 8, 8), torch.float32)
    runs = []
    for threads in (1, 2):
        with _threads(threads):
            y, grads, _ = _run(x, copy.deepcopy(bn).train(), True)
        runs.append((y, *grads))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def _with_running_statistics(bn, seed=2):
    g = torch.Generator().manual_seed(seed)
    bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
    bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 3 + 0.05)
    return bn.eval()


@needs_compiler
@pytest.mark.parametrize("shape", [(8, 16, 12, 12), (4, 7, 6, 10), (6, 64, 4, 4), (3, 32, 5, 7)])
@pytest.mark.parametrize("pool", [False, True])
def test_bn_relu_in_inference_is_torchs_eval_batchnorm_relu_and_maxpool(fresh, shape, pool):
    x, bn = _bn_case(shape, torch.float32)
    x, bn = x.contiguous(), _with_running_statistics(bn)
    with torch.inference_mode():
        ours = ops.bn_relu(x, bn, pool)
        with ops.torch_ops_only():
            torchs = ops.bn_relu(x, bn, pool)
    if pool and shape[2] % 2:   # odd height: the kernel does not apply
        assert torch.equal(ours, torchs)
        return
    assert ours.is_contiguous(memory_format=torch.channels_last) and torchs.is_contiguous()   # the kernel ran
    assert ours.shape == torchs.shape and torch.allclose(ours, torchs, rtol=1e-6, atol=1e-6)


def test_bn_relu_is_torchs_ops_where_the_kernel_does_not_apply():
    x, bn = _bn_case((4, 6, 5, 7), torch.float32)   # odd height and width: the pooled kernel does not apply
    bn.train()
    pooled = ops.bn_relu(x, copy.deepcopy(bn), pool=True)
    assert torch.equal(pooled, F.max_pool2d(F.relu(torch.nn.BatchNorm2d.forward(copy.deepcopy(bn), x)), 2))
    bn = _with_running_statistics(bn)   # eval mode while gradients are recorded, and under autocast: torch's ops
    assert torch.equal(ops.bn_relu(x, bn), F.relu(torch.nn.BatchNorm2d.forward(bn, x)))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ops.bn_relu(x, bn), F.relu(torch.nn.BatchNorm2d.forward(bn, x)))


@needs_compiler
@pytest.mark.parametrize("downsample", ["max", "maxblur", "maxaps", "strided"])
def test_a_trained_network_predicts_the_same_in_inference_with_the_fused_layers(downsample):
    from shiftlab import models
    torch.manual_seed(0)
    net = fast.accelerate(models.build(models.ModelConfig(arch="resnet" if downsample == "strided" else "vgg",
                                                          downsample=downsample, padding="circular")))
    x = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for _ in range(3):   # running statistics away from their initial values
            net.train()(x)
    calls = []
    with pytest.MonkeyPatch.context() as mp:   # count the inference kernel's calls
        mp.setattr(torch.ops.shiftlab_kernels, "bn_relu_eval",
                   lambda *a, op=torch.ops.shiftlab_kernels.bn_relu_eval: calls.append(1) or op(*a), raising=False)
        ours = inference.predict_logits(net, x)
    assert calls   # the fused inference path ran
    with ops.torch_ops_only():
        torchs = inference.predict_logits(net, x)
    assert torch.allclose(ours, torchs, rtol=1e-5, atol=1e-5) and torch.equal(ours.argmax(1), torchs.argmax(1))


@needs_compiler
@pytest.mark.parametrize("downsample", ["max", "maxblur", "maxaps", "strided"])
def test_a_network_computes_the_same_function_and_gradients_with_the_fused_layers(downsample):
    from shiftlab import models
    torch.manual_seed(0)
    net = fast.accelerate(models.build(models.ModelConfig(arch="resnet" if downsample == "strided" else "vgg",
                                                          downsample=downsample, padding="circular"))).train()
    start = copy.deepcopy(net.state_dict())
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    results = []
    for torch_only in (False, True):
        net.load_state_dict(start)
        with ops.torch_ops_only() if torch_only else contextlib.nullcontext():
            y = net(x)
            grads = torch.autograd.grad(y.square().sum(), list(net.parameters()))
        results.append((y, grads, [t.clone() for t in net.state_dict().values()]))
    (y1, g1, s1), (y2, g2, s2) = results
    assert torch.allclose(y1, y2, atol=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(g1, g2, strict=True))
    assert all(torch.allclose(a.float(), b.float(), atol=1e-6) for a, b in zip(s1, s2, strict=True))


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 16, 8, 8), (3, 7, 6, 10), (2, 32, 4, 4), (2, 64, 3, 5)])
@pytest.mark.parametrize("filt_size", [2, 3, 5, 7])
@pytest.mark.parametrize("pad_mode", ["circular", "reflect"])
@pytest.mark.parametrize("stride", [2, 1])
def test_fused_maxblurpool_is_the_dense_max_then_the_blur(dtype, shape, filt_size, pad_mode, stride):
    pool = fast.accelerate(layers.MaxBlurPool(shape[1], filt_size, stride, pad_mode=pad_mode))
    g = torch.Generator().manual_seed(filt_size)
    x = torch.randn(shape, generator=g).mul(2).round().div(2).to(dtype)   # halves: many ties
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        if pad_mode == "reflect" and filt_size // 2 >= min(shape[-2:]):   # torch's reflect pad refuses it too
            assert not ops.fused_maxblur_applies(x, filt_size, False)
            return
        ours = pool(x)
        assert type(ours.grad_fn).__name__ == "_MaxBlurBackward"   # the compiled op ran
        unfused = pool[1](pool[0](x))   # dense max (padded), then the blur (padded): no fused path
    assert ours.dtype == unfused.dtype == torch.float32 and ours.shape == unfused.shape
    assert ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, unfused, rtol=1e-6, atol=1e-6)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        assert torch.equal(pool(x.detach()), ours)   # inference: no winners kept, the same sums
    weights = torch.randn(ours.shape, generator=g)
    got, = torch.autograd.grad((ours * weights).sum(), x)
    want, = torch.autograd.grad((unfused * weights).sum(), x)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-2   # bfloat16: each side rounds its float32 sum once, 1 ulp apart
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(6, 16, 8, 8), (5, 7, 6, 12), (4, 32, 4, 4), (3, 64, 6, 9)])
@pytest.mark.parametrize("stride", [2, 3])
def test_fused_aps_keeps_the_phase_and_gradients_of_torchs_ops(dtype, shape, stride):
    if shape[2] % stride or shape[3] % stride:
        assert not ops.fused_aps_applies(torch.zeros(shape), stride, "l2")
        return
    g = torch.Generator().manual_seed(stride)
    z = torch.relu(torch.randn(shape, generator=g)).to(dtype)
    z[0] = 0   # an all-black map: every phase ties, the first wins
    z = z.contiguous(memory_format=torch.channels_last).requires_grad_()
    pool = fast.accelerate(layers.ApsPool(shape[1], 1, stride))
    assert ops.fused_aps_applies(z, stride, "l2")
    ours, phase = pool.subsample(z)
    with ops.torch_ops_only():
        theirs, their_phase = pool.subsample(z)
    assert phase[0] == 0 and torch.equal(phase, their_phase)
    assert ours.dtype == dtype and torch.equal(ours, theirs) and ours.is_contiguous(memory_format=torch.channels_last)
    weights = torch.randn(ours.shape, generator=g).to(dtype)
    got, = torch.autograd.grad((ours * weights).sum(), z)
    want, = torch.autograd.grad((theirs * weights).sum(), z)
    assert torch.equal(got, want)
    # a circular shift by (1, 2) pixels moves phase (i, j) to (i + 1, j + 2) mod s, the component by whole cells
    moved, moved_phase = pool.subsample(torch.roll(z.detach(), (1, 2), (2, 3)))
    i, j = phase[1:] // stride, phase[1:] % stride
    assert torch.equal(moved_phase[1:], (i + 1) % stride * stride + (j + 2) % stride)
    for n in range(1, shape[0]):
        cells = (int(i[n - 1] + 1) // stride, int(j[n - 1] + 2) // stride)
        assert torch.equal(moved[n], torch.roll(ours[n].detach(), cells, (1, 2)))


@needs_compiler
@needs_compiler
def test_maxblur_backward_gives_zero_to_pixels_no_output_reads():
    """A blur shorter than the stride (taps [1], stride 3) reads the dense max at one pixel in three, whose window
    covers pixels 3k and 3k + 1: pixels 3k + 2 get zero gradient."""
    ops.compiled()
    x = torch.randn(2, 16, 9, 9).contiguous(memory_format=torch.channels_last)
    y, code = torch.ops.shiftlab_kernels.maxblur_forward(x, torch.ones(1), 3, True, True)
    dx = torch.ops.shiftlab_kernels.maxblur_backward(torch.ones_like(y), code, torch.ones(1), 3, True, torch.float32)
    read = torch.zeros(9, dtype=torch.bool)
    read[::3] = read[1::3] = True
    assert dx.sum().item() == y.numel()   # each output's gradient goes to exactly one input pixel
    assert (dx[:, :, ~read, :] == 0).all() and (dx[:, :, :, ~read] == 0).all()


def test_the_fused_layers_refuse_what_the_unfused_ones_treat_differently():
    tiny = torch.rand(1, 4, 2, 2)
    with pytest.raises(ValueError, match="wraps more than once"):   # a circular blur wider than the map, either way
        fast.accelerate(layers.MaxApsPool(4, 7, pad_mode="circular"))(tiny)
    assert fast.accelerate(layers.ApsPool(3))(torch.zeros(0, 3, 4, 4)).shape == (0, 3, 2, 2)   # an empty batch
    assert not ops.fused_maxblur_applies(torch.rand(1, 4, 8, 8).bfloat16(), 3, True)   # bf16 only under autocast
    z = torch.zeros(1, 1, 2, 2)
    z[0, 0, 0, 1] = float("nan")   # a NaN norm wins, as in torch's argmax
    assert fast.accelerate(layers.ApsPool(1)).subsample(z)[1].item() == 1


def _stem_run(conv, x, autocast):
    """conv(x) under bfloat16 autocast or not, and the weight's gradient of sum(y * probe)."""
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        y = conv(x)
    probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    (y.float() * probe).sum().backward()
    return y, conv.weight.grad.clone()


@needs_compiler
@pytest.mark.parametrize("autocast,tol", [(False, 1e-5), (True, 2e-2)])
@pytest.mark.parametrize("pad_mode", ["zeros", "circular", "reflect", "replicate", "valid"])
@pytest.mark.parametrize("channels,kernel", [(16, 3), (32, 3), (64, 3), (24, 3), (16, 5)])
def test_stem_conv_is_torchs_one_channel_convolution(fresh, autocast, tol, pad_mode, channels, kernel):
    torch.manual_seed(0)
    valid = pad_mode == "valid"
    conv = modules.FastConv2d(1, channels, kernel, padding=0 if valid else kernel // 2,
                         padding_mode="zeros" if valid else pad_mode, bias=False)
    x = torch.randn(6, 1, 11, 13, generator=torch.Generator().manual_seed(1))
    assert ops.stem_conv_applies(conv, x)
    y, dw = _stem_run(conv, x, autocast)
    with ops.torch_ops_only():
        y_ref, dw_ref = _stem_run(conv, x, autocast)
    assert y.dtype == y_ref.dtype and y.shape == y_ref.shape and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y.float(), y_ref.float(), rtol=tol, atol=tol)
    assert torch.allclose(dw, dw_ref, rtol=tol, atol=tol * dw_ref.abs().max().item())


@needs_compiler
def test_stem_conv_gives_the_same_numbers_for_any_thread_count():
    torch.manual_seed(0)
    conv = modules.FastConv2d(1, 16, 3, padding=1, padding_mode="circular", bias=False)
    x = torch.randn(32, 1, 20, 20, generator=torch.Generator().manual_seed(2))
    assert ops.stem_conv_applies(conv, x)
    runs = []
    for threads in (1, 2):
        with _threads(threads):
            runs.append(_stem_run(conv, x, autocast=True))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_stem_conv_is_left_to_torch_where_it_does_not_apply():
    x = torch.randn(2, 1, 8, 8)
    conv = modules.FastConv2d(1, 16, 3, padding=1, bias=False)
    assert not ops.stem_conv_applies(conv, x.clone().requires_grad_())          # the input's gradient is torch's
    assert not ops.stem_conv_applies(modules.FastConv2d(1, 16, 3, padding=1), x)     # a bias
    assert not ops.stem_conv_applies(modules.FastConv2d(1, 16, 3, stride=2, bias=False), x)
    assert not ops.stem_conv_applies(modules.FastConv2d(2, 16, 3, bias=False), x.repeat(1, 2, 1, 1))
    with torch.autocast("cpu", dtype=torch.float16):
        assert not ops.stem_conv_applies(conv, x)
    x_grad = x.clone().requires_grad_()
    conv(x_grad).sum().backward()
    assert x_grad.grad is not None and conv.weight.grad is not None


@needs_compiler
@pytest.mark.parametrize("autocast,tol", [(False, 1e-4), (True, 3e-2)])
def test_the_first_block_is_the_stem_conv_then_bn_relu_as_torchs_ops(fresh, autocast, tol):
    torch.manual_seed(0)
    block = fast.accelerate(models.ConvBNReLU(1, 16, "circular")).train()
    x = torch.randn(6, 1, 14, 10, generator=torch.Generator().manual_seed(1))
    start = copy.deepcopy(block.state_dict())
    runs = []
    for torch_only in (False, True):
        block.load_state_dict(start)
        block.zero_grad()
        with ops.torch_ops_only() if torch_only else contextlib.nullcontext(), \
                torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            y = block(x, pool=True)
        (y.float() * torch.randn(y.shape, generator=torch.Generator().manual_seed(5))).sum().backward()
        runs.append([y.float(), *(p.grad.clone() for p in block.parameters())])
    for got, want in zip(*runs, strict=True):
        assert torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max().item())


# ---- the accelerator as a whole: swapped in after a model is built, the same function as the plain model ----

def _zoo_input(name: str, n: int = 6) -> torch.Tensor:
    from shiftlab import zoo
    entry = zoo.ENTRIES[name]
    size = entry.canvas.size if entry.canvas else entry.image_size or 32
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(7))
    return torch.where(x > 0.5, x, torch.zeros(()))     # black background and bright strokes, like the data


def _zoo_names() -> list[str]:
    from shiftlab import zoo
    return sorted(zoo.ENTRIES)


def _train_step(model: torch.nn.Module, x: torch.Tensor, dtype=torch.float32):
    """A copy of model in dtype: its logits on x in training mode, its state after that forward pass (running
    statistics), and its logits in inference."""
    model = copy.deepcopy(model).to(dtype).train()
    with torch.no_grad():
        y = model(x.to(dtype)).double()
        return y, [t.double() for t in model.state_dict().values()], model.eval()(x.to(dtype)).double()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def _fast_calls(twin: torch.nn.Module, x: torch.Tensor) -> list[dict]:
    """One training step of the accelerated twin on x (the gradient of a fixed random linear function of the
    logits): for each outermost fast module called (FusedBody excepted: its layers are recorded), its path, input,
    keyword arguments, the gradient that reached its output, and its parameters' gradients in context."""
    calls, hooks = [], []

    def record(path):
        def hook(module, args, kwargs, y):
            call = {"path": path, "module": module, "x": args[0].detach().clone(), "kwargs": dict(kwargs)}
            y.register_hook(lambda g: call.__setitem__("g", g.detach().clone()))   # the gradient before any in-place op
            calls.append(call)
        return hook

    for path, module in twin.named_modules():
        if type(module) in fast.PLAIN and type(module) is not modules.FusedBody:
            hooks.append(module.register_forward_hook(record(path), with_kwargs=True))
    try:
        y = twin.train()(x.clone().requires_grad_())
        probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(11))
        (y * probe).sum().backward()
    finally:
        for hook in hooks:
            hook.remove()
    paths = {c["path"] for c in calls}
    outermost = [c for c in calls if not any(c["path"].startswith(p + ".") for p in paths)]
    for call in outermost:
        call["context grads"] = [p.grad.clone() for p in call["module"].parameters()]
    return outermost


def _on_piece(module: torch.nn.Module, x: torch.Tensor, pool: bool, decided: torch.Tensor) -> torch.Tensor:
    """module(x), then MaxPool_{2,2} when pool; a ConvBNReLU's ReLU signs and the pool's winners taken from decided
    (a float32 run's unpooled output), so that the reference is the same linear piece of a network that is linear
    only piecewise: a pre-activation within rounding of 0 sends float32 and float64 to different sides."""
    if not isinstance(module, models.ConvBNReLU):
        return module(x)
    y = module[1](module[0](x)) * (decided > 0)
    if pool:
        winners = F.max_pool2d(decided, 2, return_indices=True)[1]
        y = y.flatten(2).gather(2, winners.flatten(2)).view(winners.shape)
    return y


def _backward(call: dict, m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """y, and the gradients of <y, the call's output gradient> with respect to x and m's parameters, in float64."""
    params = list(m.parameters())
    grads = torch.autograd.grad(y, [x, *params], call["g"].to(y.dtype), allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip([x, *params], grads, strict=True)]
    return {"output": y.detach().double(), "input gradient": grads[0].double(),
            "parameter gradients": torch.cat([g.double().flatten() for g in grads[1:]]
                                             or [torch.zeros(0, dtype=torch.float64)]),
            "each parameter's gradient": grads[1:]}


def _module_step(call: dict, module: torch.nn.Module) -> tuple[dict, dict]:
    """A copy of module (fast or plain) run in float32 on the call's input and keyword arguments, the call's output
    gradient sent back; and the plain layer in float64 on the same linear piece as that run (_on_piece). Each as
    _backward's output."""
    pool = call["kwargs"].get("pool", False)
    m = copy.deepcopy(module).train()
    x = call["x"].clone().requires_grad_()
    if type(m) in fast.PLAIN:
        y = m(x, **call["kwargs"])
        with torch.no_grad():
            decided = copy.deepcopy(module).train()(call["x"], pool=False) if pool else y.detach()
    else:                       # the plain twin of a ConvBNReLU fused with the MaxPool after it
        decided = m(x)
        y = F.max_pool2d(decided, 2) if pool else decided
    run = _backward(call, m, x, y)
    reference = fast.plain(copy.deepcopy(module)).double().train()
    x64 = call["x"].double().requires_grad_()
    return run, _backward(call, reference, x64, _on_piece(reference, x64, pool, decided.detach()))


@needs_compiler
@pytest.mark.parametrize("name", _zoo_names())
def test_every_zoo_network_computes_the_same_outputs_and_gradients_accelerated_and_plain(name):
    """For each zoo network (the book's scale), the accelerated twin against the plain model, each within 4x the
    plain model's own float32 relative error against float64 (or 1e-4), with the same state-dict keys: the compiled
    ops change rounding, not the function.
    Whole network, training step: logits and running statistics; then inference logits.
    Each fast module, in context (its input and output gradient recorded in the twin's training step): output,
    input gradient and parameter gradients, against the plain layer in float64 on the same linear piece (the ReLU
    signs and pool winners of the float32 run's own output), and its parameters' gradients in the network equal to
    those of the module alone. The network's gradient is not compared as a whole: it changes by a finite amount
    wherever rounding moves a pre-activation across 0, which a deep float32 network can do at any input."""
    from shiftlab import zoo
    cfg = zoo.adapted(zoo.ENTRIES[name].model)
    torch.manual_seed(0)
    net = models.build(cfg)
    twin = fast.accelerate(copy.deepcopy(net))
    assert not fast.is_accelerated(net) and list(twin.state_dict()) == list(net.state_dict())
    x = _zoo_input(name)
    if cfg.arch in models.STEERABLE_ARCHS:     # e2cnn's layers have no fast twin: the model is left as it is
        assert not fast.is_accelerated(twin) and torch.equal(twin.eval()(x), net.eval()(x))
        return
    assert fast.is_accelerated(twin)
    exact, plain32, accelerated = _train_step(net, x, torch.float64), _train_step(net, x), _train_step(twin, x)
    counters = [i for i, key in enumerate(net.state_dict()) if key.endswith("num_batches_tracked")]

    def measured(run):
        y, state, inference = run
        floating = [t.flatten() for i, t in enumerate(state) if i not in counters]
        return {"logits": y, "running statistics": torch.cat(floating), "inference logits": inference}

    def within(ours, our_reference, theirs, their_reference, where):
        for what in our_reference:
            bound = max(1e-4, 4 * _relative_error(theirs[what], their_reference[what]))
            err = _relative_error(ours[what], our_reference[what])
            assert err <= bound, f"{where}{what}: {err:.2e} > {bound:.2e}"

    within(measured(accelerated), measured(exact), measured(plain32), measured(exact), "")
    assert all(torch.equal(accelerated[1][i], exact[1][i]) for i in counters)

    calls = _fast_calls(copy.deepcopy(twin), x)
    assert calls and all("g" in call for call in calls)
    for call in calls:
        ours, our_reference = _module_step(call, call["module"])
        theirs, their_reference = _module_step(call, fast.plain(copy.deepcopy(call["module"])))
        compared = ("output", "input gradient", "parameter gradients")
        within(*({k: run[k] for k in compared} for run in (ours, our_reference, theirs, their_reference)),
               f"{call['path']}: ")
        for in_context, by_itself in zip(call["context grads"], ours["each parameter's gradient"], strict=True):
            assert _relative_error(in_context.double(), by_itself.double()) <= 1e-5, call["path"]


def test_the_switch_leaves_models_plain_and_plain_undoes_the_swap(fresh):
    net = models.build(models.ModelConfig(downsample="maxblur", filt_size=3, padding="circular"))
    fresh.setenv(ops.FAST_ENV, "off")
    assert not fast.is_accelerated(fast.accelerate(net))
    fresh.setenv(ops.FAST_ENV, "on")
    assert fast.is_accelerated(fast.accelerate(net)) and type(net.body).__name__ == "FusedBody"
    assert not fast.is_accelerated(fast.plain(net)) and type(net.body) is torch.nn.Sequential


def test_the_zoo_accelerates_the_models_it_trains_and_loads(tmp_path, fresh):
    from shiftlab import zoo
    net, info = zoo.get("baseline", n_train=64, epochs=1, cache_dir=tmp_path, progress=False)
    assert fast.is_accelerated(net)
    fresh.setenv(ops.FAST_ENV, "off")
    plain_net, again = zoo.get("baseline", n_train=64, epochs=1, cache_dir=tmp_path, progress=False)
    assert again["cached"] and again["weights"] == info["weights"] and not fast.is_accelerated(plain_net)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 1, 0, 1), (1, 2, 1, 2), (2, 3, 0, 4), (0, 0, 3, 0)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_circular_pad_equals_torch_and_keeps_memory_format(pads, channels_last):
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = modules.circular_pad(x, pads)
    assert torch.equal(out, F.pad(x, pads, mode="circular"))
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.autograd.gradcheck(lambda z: modules.circular_pad(z, pads), (x.requires_grad_(),))


def test_circular_pad_that_wraps_twice_is_an_error():
    with pytest.raises(ValueError, match="wraps more than once around a 1x8 map"):
        modules.circular_pad(torch.zeros(1, 1, 1, 8), (0, 2, 0, 2))


@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect"])
def test_fast_conv2d_equals_torch_conv_with_the_same_weights(padding_mode):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode=padding_mode)
    ours = fast.accelerate(copy.deepcopy(ref))
    assert isinstance(ours, modules.FastConv2d)
    x = torch.randn(2, 3, 9, 8).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)
