"""VGGLike networks build for every downsampling kind and padding, and keep their stated periodicity."""
import math
from dataclasses import replace

import pytest
import torch

from shiftlab import models, shifts

WIDTHS = (4, 8, 8)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _build(seed=0, **kw):
    torch.manual_seed(seed)
    return models.build(models.ModelConfig(**kw)).eval()


@pytest.mark.parametrize("padding", models.PADDING_MODES)
@pytest.mark.parametrize("downsample", models.DOWNSAMPLE_KINDS)
def test_builds_and_shapes(downsample, padding):
    cfg = models.ModelConfig(downsample=downsample, filt_size=3, padding=padding, widths=WIDTHS)
    torch.manual_seed(0)
    model = models.build(cfg).eval()
    x = _rand(2, 1, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    s = cfg.total_stride
    assert s == 2 ** len(WIDTHS) == 8
    assert [name for name, _ in feats] == model.layer_names
    assert len(set(model.layer_names)) == len(model.layer_names)
    assert feats[-1][1].shape == (2, WIDTHS[-1], 32 // s, 32 // s)


@pytest.mark.parametrize("widths", [(4,), (4, 8), (2, 2, 2, 2)])
def test_total_stride_is_two_to_stages(widths):
    cfg = models.ModelConfig(widths=widths)
    model = models.build(cfg).eval()
    with torch.no_grad():
        last = model.forward_features(torch.zeros(1, 1, 32, 32))[-1][1]
    assert cfg.total_stride == 2 ** len(widths) == 32 // last.shape[-1]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_subsampling_stages_change_the_stride_and_nothing_else(k):
    """Chapter 2's control: four equal stages, of which the first k subsample. The parameters are those of the network
    where every stage subsamples (same names, same shapes), the last map is 48 / 2**k px, and with circular padding
    the output is invariant to circular shifts by S = 2**k (and not by 1 px)."""
    cfg = models.ModelConfig(widths=(4, 8, 8, 8), padding="circular", subsampling_stages=k)
    torch.manual_seed(0)
    net = models.build(cfg).eval()
    every = models.build(models.ModelConfig(widths=(4, 8, 8, 8), padding="circular"))
    assert {n: p.shape for n, p in net.named_parameters()} == {n: p.shape for n, p in every.named_parameters()}
    x = torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(k))
    with torch.no_grad():
        assert net.forward_features(x)[-1][1].shape[-1] == 48 // 2 ** k == 48 // cfg.total_stride
        ref = net(x)
        assert (net(torch.roll(x, (2 ** k, 2 ** k), dims=(-2, -1))) - ref).abs().max() < 1e-5
        assert (net(torch.roll(x, (1, 1), dims=(-2, -1))) - ref).abs().max() > 1e-4
    assert "subsampling_stages" in cfg.to_dict() and "subsampling_stages" not in every.cfg.to_dict()


@pytest.mark.parametrize("kw, fragment", [
    ({"subsampling_stages": 4, "widths": (4, 8)}, "1..2 (the number of stages)"),
    ({"subsampling_stages": 1, "arch": "resnet", "downsample": "strided"}, "for arch 'vgg'"),
    ({"downsample": "stride"}, "max, maxblur, strided, convblur, avg, blur"),
    ({"filt_size": 9}, "1..7"),
    ({"padding": "bogus"}, "zeros, circular, reflect"),
    ({"widths": ()}, "one or more positive integers"),
])
def test_invalid_config_names_choices(kw, fragment):
    with pytest.raises(ValueError) as err:
        models.ModelConfig(**kw)
    message = str(err.value)
    assert fragment in message and next(iter(kw)) in message


@pytest.mark.parametrize("padding", models.PADDING_MODES)
def test_maxblur_size1_equals_max(padding):
    maxnet = _build(downsample="max", filt_size=1, padding=padding, widths=WIDTHS)
    blurnet = _build(seed=1, downsample="maxblur", filt_size=1, padding=padding, widths=WIDTHS)
    assert maxnet.state_dict().keys() == blurnet.state_dict().keys()
    x = _rand(3, 1, 32, 32)
    with torch.no_grad():
        before = blurnet(x)
        blurnet.load_state_dict(maxnet.state_dict())
        after, reference = blurnet(x), maxnet(x)
        feats, ref_feats = blurnet.forward_features(x), maxnet.forward_features(x)
    assert not torch.allclose(before, reference)  # the weights really were different
    for (name, f), (ref_name, r) in zip(feats, ref_feats, strict=True):
        assert name.split(".")[0] == ref_name.split(".")[0]
        assert torch.equal(f, r), name  # every feature map is bit-identical
    # the last map is a strided view (x[:, :, ::2, ::2]), so the global mean may sum in another order
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("downsample", [k for k in models.DOWNSAMPLE_KINDS if k not in models.APS_KINDS])
def test_circular_logits_invariant_at_total_stride(downsample):
    """Fixed subsampling: invariant at multiples of S only (APS, invariant everywhere, is tests/test_aps.py)."""
    model = _build(downsample=downsample, filt_size=3, padding="circular", widths=WIDTHS)
    s = model.cfg.total_stride
    x = _rand(3, 1, 32, 32, seed=2)
    with torch.no_grad():
        ref = model(x)
        for dy, dx in [(s, 0), (0, s), (2 * s, -s), (3 * s, 3 * s)]:
            torch.testing.assert_close(model(shifts.roll(x, dy, dx)), ref, rtol=0, atol=1e-5)
        # a one-pixel shift is not a multiple of the stride: the logits do move
        assert (model(shifts.roll(x, 1, 1)) - ref).abs().max() > 1e-4


def test_fully_connected_head_sees_position_and_gap_head_does_not():
    """fc_input flattens the last map into a linear layer: the output depends on where the object is;
    global average pooling with circular padding does not (at multiples of the total stride)."""
    torch.manual_seed(0)
    fc = models.build(models.ModelConfig(padding="circular", fc_input=32)).eval()
    gap = models.build(models.ModelConfig(padding="circular")).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert (fc(shifts.roll(x, 8, 8)) - fc(x)).abs().max() > 1e-3
        assert (gap(shifts.roll(x, 8, 8)) - gap(x)).abs().max() < 1e-5
    assert "fc_input" not in models.ModelConfig().to_dict(), "default configs keep their cache keys"
    with pytest.raises(ValueError, match="divisible by the total stride 8"):
        models.ModelConfig(fc_input=30)


@pytest.mark.parametrize("downsample,filt_size", [("max", 1), ("maxblur", 5), ("convblur", 3), ("strided", 1)])
def test_channels_last_gives_the_same_function(downsample, filt_size):
    """Training and evaluation run channels-last: the same weights give the same outputs as the default layout."""
    torch.manual_seed(0)
    net = models.build(models.ModelConfig(downsample=downsample, filt_size=filt_size, padding="circular")).eval()
    x = torch.rand(4, 1, 32, 32)
    plain = net(x)
    fast = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_spatial_transformer_starts_at_the_identity_and_moves_the_image():
    torch.manual_seed(0)
    net = models.build(models.ModelConfig(arch="stn", padding="circular")).eval()
    x = _rand(2, 1, 64, 64, seed=3)
    with torch.no_grad():
        # equal up to bilinear rounding
        assert (net.align(x) - x).abs().max() < 1e-4 and torch.allclose(net(x), net.classifier(x), atol=1e-4)
        net.localise[-1].bias.copy_(torch.tensor([10 * math.atanh(0.25), 0.0]))   # t_x = 0.25 half-widths = 8 px
        moved = net.align(x)
    assert torch.allclose(moved[..., :, :56], x[..., :, 8:], atol=1e-4)   # out(u) = x(u + 8 px)


def test_a_degenerate_schedule_is_one_clear_error():
    from shiftlab.train import TrainConfig, train

    net = models.build(models.ModelConfig())
    with pytest.raises(ValueError, match="make 4 steps, which leaves the one-cycle schedule's warm-up zero steps long"):
        train(net, torch.rand(400, 1, 32, 32), torch.randint(0, 10, (400,)), TrainConfig(epochs=1), progress=False)


def test_bf16_training_keeps_float32_weights_learns_and_repeats():
    from shiftlab.train import TrainConfig, train

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (512,), generator=g)
    x = torch.rand(512, 1, 32, 32, generator=g) * 0.2
    for k in range(4):     # class k: a bright 8x8 square in quadrant k, anywhere inside it
        rows = (y == k).nonzero().flatten()
        for i, r in enumerate(rows.tolist()):
            oy, ox = 16 * (k // 2) + i % 8, 16 * (k % 2) + (i * 3) % 8
            x[r, 0, oy:oy + 8, ox:ox + 8] += 1
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = models.build(models.ModelConfig())
        history = train(net, x, y, TrainConfig(epochs=3, batch_size=64, precision="bf16"), progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert history[-1]["train_acc"] > 0.9
    assert torch.equal(runs[0], runs[1])


def test_training_precision_is_checked_and_keyed_only_when_not_fp32():
    from shiftlab.train import TrainConfig

    with pytest.raises(ValueError, match="precision='fp16' is invalid; valid: fp32, bf16"):
        TrainConfig(precision="fp16")
    assert "precision" not in TrainConfig().to_dict() and TrainConfig(precision="bf16").to_dict()["precision"] == "bf16"


def test_resnet18_at_the_paper_width_is_the_cifar_resnet18():
    """64-128-256-512 channels on 3-channel 32 px images: He et al.'s CIFAR ResNet-18 (11,173,962 parameters),
    total stride 8 (three subsampling stages), with the blur or APS in place of the strided convolutions."""
    config = models.ModelConfig(arch="resnet18", downsample="strided", padding="circular", widths=(64, 128, 256, 512),
                                in_channels=3)
    net = models.build(config)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962 and config.total_stride == 8
    assert net.forward_features(torch.zeros(1, 3, 32, 32))[-1][1].shape == (1, 512, 4, 4)
    for kind in ("convblur", "convaps"):
        other = models.build(replace(config, downsample=kind, filt_size=3))
        assert sum(p.numel() for p in other.parameters()) == 11_173_962     # the blur and APS add no weights
        assert other(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet18_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="arch='resnet18' needs downsample in strided, convblur, convaps"):
        models.ModelConfig(arch="resnet18", downsample="max")
    with pytest.raises(ValueError, match="two or more widths"):
        models.ModelConfig(arch="resnet18", downsample="strided", widths=(16,))
