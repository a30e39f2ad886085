"""Adaptive polyphase sampling: the layer by hand, and exact circular shift invariance of whole networks
with random weights at random shifts (before any training)."""
import pytest
import torch

from shiftlab import layers, models, protocols, shifts


def test_polyphase_components_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    comps = layers.polyphase_components(x)
    assert comps.shape == (1, 4, 1, 2, 2)
    assert comps[0, :, 0].flatten(1).tolist() == [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]]


def test_aps_keeps_the_component_of_largest_norm_per_image():
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 1, 1] = 5.0            # phase (1, 1) -> index 3
    x[1, 0, 0, 1] = -7.0           # phase (0, 1) -> index 1 (the norm, not the value)
    aps = layers.ApsPool(1)
    assert aps.selected_phase(x).tolist() == [3, 1]
    out = aps(x)
    assert out.shape == (2, 1, 2, 2) and out[0, 0, 0, 0] == 5.0 and out[1, 0, 0, 0] == -7.0


def test_aps_ties_keep_the_first_phase_and_black_maps_give_black():
    x = torch.zeros(2, 3, 4, 4)
    x[1] = 1.0                     # every component has the same norm
    aps = layers.ApsPool(3)
    assert aps.selected_phase(x).tolist() == [0, 0]
    assert aps(x)[0].eq(0).all() and aps(x)[1].eq(1).all()


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_aps_output_is_a_whole_cell_shift_under_any_input_shift(norm):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, 8, 8, generator=g)
    aps = layers.ApsPool(4, norm=norm)
    ref = aps(x)
    for dy, dx in [(1, 0), (0, 1), (1, 1), (3, 6), (7, 7)]:
        out = aps(shifts.roll(x, dy, dx))
        # per image the same component wins, moved by a whole number of cells: some roll of ref equals out
        for o, r in zip(out, ref, strict=True):
            assert any(torch.equal(o, shifts.roll(r, cy, cx)) for cy in range(4) for cx in range(4))


def test_aps_refuses_odd_maps_and_unknown_norms():
    with pytest.raises(ValueError, match="valid: sizes divisible by 2"):
        layers.ApsPool(1)(torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="valid: l1, l2, linf"):
        layers.ApsPool(1, norm="l3")


def test_aps_gradient_reaches_only_the_kept_component():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    aps = layers.ApsPool(3)
    aps(x).sum().backward()
    phases = aps.selected_phase(x.detach())
    for n in range(2):
        i, j = divmod(int(phases[n]), 2)
        mask = torch.zeros(4, 4)
        mask[i::2, j::2] = 1
        assert torch.equal(x.grad[n], mask.expand(3, 4, 4))


@pytest.mark.parametrize("downsample, filt_size", [("maxaps", 1), ("maxaps", 3), ("convaps", 1), ("convaps", 5)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aps_network_with_random_weights_is_exactly_invariant_to_random_circular_shifts(downsample, filt_size, seed):
    """100 % circular consistency before training: every prediction is unchanged by every shift tried,
    and the logits agree to float precision; the MaxPool network with the same seed is not invariant."""
    torch.manual_seed(seed)
    net = models.build(models.ModelConfig(downsample=downsample, filt_size=filt_size, padding="circular")).eval()
    torch.manual_seed(seed)
    plain = models.build(models.ModelConfig(downsample="max", padding="circular")).eval()
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.rand(32, 1, 32, 32, generator=g)
    moves = torch.randint(0, 32, (12, 2), generator=g).tolist()
    with torch.no_grad():
        ref, plain_ref = net(x), plain(x)
        worst, plain_worst = 0.0, 0.0
        for dy, dx in moves:
            z = net(shifts.roll(x, dy, dx))
            assert torch.equal(z.argmax(1), ref.argmax(1))
            worst = max(worst, (z - ref).abs().max().item())
            plain_worst = max(plain_worst, (plain(shifts.roll(x, dy, dx)) - plain_ref).abs().max().item())
    assert worst < 1e-4 < plain_worst


def test_aps_with_zero_padding_is_not_exactly_invariant():
    torch.manual_seed(0)
    net = models.build(models.ModelConfig(downsample="maxaps", padding="zeros")).eval()
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (net(shifts.roll(x, 3, 5)) - net(x)).abs().max() > 1e-4


def test_phase_margins_name_every_aps_layer_and_follow_a_one_pixel_shift():

    torch.manual_seed(0)
    net = models.build(models.ModelConfig(downsample="maxaps", padding="circular", widths=(4, 8))).eval()
    x = torch.rand(200, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    found = protocols.aps_phase_margins(net, x)
    assert sorted(found) == ["body.s1_maxaps.1", "body.s2_maxaps.1"]
    first = found["body.s1_maxaps.1"]
    assert first["phase"].shape == (200,) and (first["margin"] >= 0).all() and (first["norm"] > 0).all()
    moved = protocols.aps_phase_margins(net, shifts.roll(x, 0, 1))["body.s1_maxaps.1"]
    # a 1-px horizontal shift swaps the column parity of the kept component: j -> 1 - j
    assert torch.equal(moved["phase"] % 2, 1 - first["phase"] % 2)


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_aps_equals_its_definition_on_the_polyphase_components(norm, channels_last):
    """The fast layer (norms reduced per pixel, the kept cell gathered in place) keeps the component of largest
    float64 norm of polyphase_components, values and gradients exactly."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, 8, 12, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    aps = layers.ApsPool(5, norm=norm)
    comps = layers.polyphase_components(x, 2)
    p = {"l1": 1, "l2": 2, "linf": float("inf")}[norm]
    norms = comps.detach().flatten(2).double().norm(p=p, dim=2)
    assert torch.allclose(aps.phase_norms(x), norms, rtol=1e-6, atol=0)     # per-pixel channel sums in float32
    expected = comps[torch.arange(6), norms.argmax(1)]
    out = aps(x)
    assert torch.equal(out, expected)
    weights = torch.randn(out.shape, generator=g)
    got, = torch.autograd.grad((out * weights).sum(), x)
    want, = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.equal(got, want)


@pytest.mark.parametrize("filt_size", [1, 3])
def test_aps_resnet18_is_exactly_invariant_and_its_shortcuts_share_the_main_paths_phase(filt_size):
    """Chaman & Dokmanić's ResNet: each stride-2 block subsamples its main path and its shortcut at one phase, so the
    sum stays on one grid and random weights give the same logits under every circular shift; the same blocks
    with fixed (strided) subsampling do not."""
    config = models.ModelConfig(arch="resnet18", downsample="convaps", filt_size=filt_size, padding="circular",
                                widths=(4, 8, 8, 8))
    torch.manual_seed(0)
    net = models.build(config).eval()
    torch.manual_seed(0)
    strided = models.build(models.ModelConfig(arch="resnet18", downsample="strided", padding="circular",
                                              widths=(4, 8, 8, 8))).eval()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(16, 1, 32, 32, generator=g)
    with torch.no_grad():
        ref, strided_ref = net(x), strided(x)
        moves = torch.randint(0, 32, (6, 2), generator=g).tolist()
        worst = max((net(shifts.roll(x, dy, dx)) - ref).abs().max().item() for dy, dx in moves)
        strided_worst = max((strided(shifts.roll(x, dy, dx)) - strided_ref).abs().max().item() for dy, dx in moves)
    assert worst < 1e-5 * ref.abs().max().item() and strided_worst > 1e-3 * strided_ref.abs().max().item()


def test_aps_check_invariance_passes_for_aps_and_fails_for_a_fixed_phase():
    """ApsPool.check_invariance: the output moves by whole cells under every circular shift (exactly, on random maps);
    a layer that always keeps phase 0 (plain subsampling) fails it."""
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for filt_size in (1, 3):
        assert layers.ApsPool(4, filt_size).double().check_invariance(x) == 0.0

    class FixedPhase(layers.ApsPool):
        def keep(self, z):
            phase = torch.zeros(len(z), dtype=torch.long)
            return z[..., ::self.stride, ::self.stride], phase

    with pytest.raises(AssertionError, match="not shift equivariant at shift"):
        FixedPhase(4).check_invariance(x)


def test_an_aps_network_checks_its_own_invariance_and_a_maxpool_one_refuses():
    from shiftlab import models
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    net = models.build(models.ModelConfig(downsample="maxaps", filt_size=3, padding="circular")).eval()
    assert net.check_shift_invariance(x) < 1e-5
    with pytest.raises(ValueError, match="only APS networks with circular padding"):
        models.build(models.ModelConfig(downsample="max", padding="circular")).eval().check_shift_invariance(x)
    zeros = models.build(models.ModelConfig(downsample="maxaps", padding="zeros")).eval()
    with pytest.raises(ValueError, match="padding='zeros'"):
        zeros.check_shift_invariance(x)

    class FixedPhase(layers.ApsPool):     # plain stride-2 subsampling in APS's place: not invariant
        def keep(self, z):
            return z[..., ::self.stride, ::self.stride], torch.zeros(len(z), dtype=torch.long)

    for module in net.modules():
        if type(module) is layers.ApsPool:
            module.__class__ = FixedPhase
    with pytest.raises(AssertionError, match="not invariant to the circular shift"):
        net.check_shift_invariance(x)


def test_aps_check_refuses_a_blur_that_is_not_circular():
    with pytest.raises(ValueError, match="only circular padding commutes with shifts"):
        layers.ApsPool(2, 3, pad_mode="reflect").check_invariance(torch.randn(1, 2, 8, 8))
