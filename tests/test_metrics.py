"""Shift-invariance and equivariance metrics give the hand-computed answers on tiny models."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab import inference, metrics, models, protocols, shifts, spectra


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class _BrightestColumnHalf(nn.Module):
    """Predicts class 1 iff the brightest pixel lies in the right half of the image (columns >= W/2)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # predict_logits reads the device from a parameter

    def forward(self, x):
        w = x.shape[-1]
        col = x.flatten(1).argmax(1) % w
        return F.one_hot((col >= w // 2).long(), 2).float()


# --- consistency -------------------------------------------------------------------------------

def test_consistency_invariant_model_is_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))
    x = _rand(20, 3, 12, 12)
    assert protocols.consistency(model, x, "roll", 3) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_consistency_brightest_pixel_by_hand(seed):
    n, h, w, m = 40, 10, 12, 4
    g = torch.Generator().manual_seed(100)
    rows = torch.randint(0, h, (n,), generator=g)
    cols = torch.randint(0, w, (n,), generator=g)
    x = torch.zeros(n, 1, h, w)
    x[torch.arange(n), 0, rows, cols] = 1.0

    g = torch.Generator().manual_seed(seed)
    (_, adx), (_, bdx) = shifts.random_offsets(n, m, g), shifts.random_offsets(n, m, g)
    side_a = (cols + adx) % w >= w // 2
    side_b = (cols + bdx) % w >= w // 2
    expected = (side_a == side_b).float().mean().item()
    assert 0.0 < expected < 1.0  # the case really discriminates
    assert protocols.consistency(_BrightestColumnHalf(), x, "roll", m, seed=seed) == pytest.approx(expected)


def test_consistency_crop_brightest_pixel_by_hand():
    n, h, w, m = 30, 12, 16, 3
    g = torch.Generator().manual_seed(3)
    cols = torch.randint(m, w - m, (n,), generator=g)  # the pixel never leaves the frame
    x = torch.zeros(n, 1, h, w)
    x[torch.arange(n), 0, h // 2, cols] = 1.0
    g = torch.Generator().manual_seed(2)
    (_, adx), (_, bdx) = shifts.random_offsets(n, m, g), shifts.random_offsets(n, m, g)
    expected = (((cols + adx) >= w // 2) == ((cols + bdx) >= w // 2)).float().mean().item()
    assert 0.0 < expected < 1.0
    assert protocols.consistency(_BrightestColumnHalf(), x, "crop", m, seed=2) == pytest.approx(expected)


# --- probability-change metrics and accuracy ------------------------------------------------

PROBS_A = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
PROBS_B = torch.tensor([[0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.4, 0.5, 0.1]])


def test_p_top1_change_by_hand():
    assert metrics.p_top1_change(PROBS_A, PROBS_B) == pytest.approx(0.5)
    assert metrics.p_top1_change(PROBS_A, PROBS_A) == 0.0


def test_mac_uses_top1_before_shift():
    # k from PROBS_A: 0, 1, 2, 0 -> |diffs| 0.1, 0.4, 0.4, 0.1 (k from PROBS_B would give 0.3)
    assert metrics.mean_absolute_change(PROBS_A, PROBS_B) == pytest.approx(0.25, abs=1e-6)
    assert metrics.mean_absolute_change(PROBS_B, PROBS_A) == pytest.approx(0.3, abs=1e-6)
    assert metrics.mean_absolute_change(PROBS_A, PROBS_A) == 0.0


def test_accuracy_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 0.5, 0.2]])
    assert metrics.accuracy(logits, torch.tensor([0, 2, 2, 1])) == pytest.approx(0.75)
    assert metrics.accuracy(logits, torch.tensor([1, 0, 0, 0])) == 0.0


# --- relative change and equivariance error ------------------------------------------------------

def test_relative_change_by_hand():
    a = torch.ones(2, 2)
    assert metrics.relative_change(a, a + torch.tensor([[1.0, 0], [0, 0]])) == pytest.approx(0.5)
    assert metrics.relative_change(torch.tensor([3.0, 4.0]), torch.tensor([0.0, 0.0])) == pytest.approx(1.0)


_W = _rand(4, 3, 3, 3, seed=11)


def _circ_conv(x, stride):
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), _W, stride=stride)


def test_stride1_circular_conv_is_equivariant_everywhere():
    x = _rand(2, 3, 8, 8)
    errors = [metrics.equivariance_error(lambda t: _circ_conv(t, 1), x, dy, dx)
              for dy, dx in metrics.shift_grid(8)]
    assert max(errors) < 1e-5


def test_stride2_circular_conv_equivariant_only_at_even_shifts():
    x = _rand(2, 3, 8, 8, seed=1)
    for dy, dx in metrics.shift_grid(4):
        err = metrics.equivariance_error(lambda t: _circ_conv(t, 2), x, dy, dx)
        if dy % 2 == 0 and dx % 2 == 0:
            assert err < 1e-5, (dy, dx, err)
        else:
            assert err > 0.1, (dy, dx, err)


# --- grids on a small circular-padded VGGLike ------------------------------------------------------

SIZE = 16


@pytest.fixture(scope="module")
def circ_net():
    torch.manual_seed(0)
    return models.build(models.ModelConfig(padding="circular", widths=(4, 8))).eval()


@pytest.fixture(scope="module")
def images():
    return _rand(6, 1, SIZE, SIZE, seed=4)


@pytest.fixture(scope="module")
def full_grid(circ_net, images):
    return protocols.output_change_grid(circ_net, images, period=SIZE)


def test_shift_grid_row_major():
    assert metrics.shift_grid(2) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_output_change_zero_only_at_total_stride(circ_net, full_grid):
    s = circ_net.cfg.total_stride
    assert s == 4
    change, flips = full_grid["logit_change"], full_grid["p_change"]
    assert change.shape == flips.shape == (SIZE, SIZE)
    assert change[0, 0] < 1e-5
    for dy, dx in metrics.shift_grid(SIZE):
        if dy % s == 0 and dx % s == 0:
            assert change[dy, dx] < 1e-5 and flips[dy, dx] == 0, (dy, dx)
        else:
            assert change[dy, dx] > 1e-4, (dy, dx, change[dy, dx].item())


def test_tile_periodic_by_hand():
    grid = torch.arange(9.0).reshape(3, 3)
    tiled = metrics.tile_periodic(grid, 7)
    expected = torch.tensor([[3.0 * (i % 3) + (j % 3) for j in range(7)] for i in range(7)])
    assert torch.equal(tiled, expected)


def test_tile_periodic_reproduces_full_grid(circ_net, images, full_grid):
    s = circ_net.cfg.total_stride
    small = protocols.output_change_grid(circ_net, images, period=s)
    for key in ("logit_change", "p_change"):
        tiled = metrics.tile_periodic(small[key], SIZE)
        torch.testing.assert_close(tiled, full_grid[key], rtol=0, atol=1e-5)


def test_layer_strides(circ_net):
    assert protocols.layer_strides(circ_net, SIZE) == {"s1.conv1": 1, "s1.max": 2, "s2.conv1": 2, "s2.max": 4}


def test_feature_distance_zero_at_layer_stride(circ_net, images):
    grids = protocols.feature_distance_grid(circ_net, images, period=SIZE)
    strides = protocols.layer_strides(circ_net, SIZE)
    assert list(grids) == circ_net.layer_names
    for name, grid in grids.items():
        s = strides[name]
        assert grid.shape == (SIZE, SIZE)
        for dy, dx in metrics.shift_grid(SIZE):
            if dy % s == 0 and dx % s == 0:
                assert grid[dy, dx] < 1e-5, (name, dy, dx, grid[dy, dx].item())
        if s > 1:
            assert grid[1, 1] > 1e-4, (name, grid[1, 1].item())


# --- aliased energy fraction of an image spectrum --------------------------------------------------

def _cosine_image(n: int, cycles_y: int, cycles_x: int) -> torch.Tensor:
    """cos(2π (ky i + kx j) / n) on an n x n grid, shape (1, 1, n, n)."""
    i = torch.arange(n, dtype=torch.float64)
    return torch.cos(2 * torch.pi * (cycles_y * i[:, None] + cycles_x * i[None, :]) / n)[None, None]


def test_aliased_fraction_of_pure_cosines():
    n = 32  # new Nyquist after stride 2: 8 cycles per 32 px
    assert spectra.aliased_fraction(_cosine_image(n, 0, 7)).item() == pytest.approx(0.0, abs=1e-6)
    assert spectra.aliased_fraction(_cosine_image(n, 0, 8)).item() == pytest.approx(0.0, abs=1e-6)
    assert spectra.aliased_fraction(_cosine_image(n, 0, 9)).item() == pytest.approx(1.0, abs=1e-6)
    assert spectra.aliased_fraction(_cosine_image(n, 12, 2)).item() == pytest.approx(1.0, abs=1e-6)
    assert spectra.aliased_fraction(_cosine_image(n, 0, 7), stride=4).item() == pytest.approx(1.0, abs=1e-6)


def test_aliased_fraction_mix_ignores_constant_and_sums_channels():
    low, high = _cosine_image(32, 3, 0), _cosine_image(32, 0, 12)
    x = torch.cat([5.0 + low + 2 * high, low], dim=1)  # energies: low 1 + 1, high 4
    assert spectra.aliased_fraction(x).item() == pytest.approx(4 / 6, abs=1e-6)
    assert spectra.aliased_fraction(torch.full((2, 1, 8, 8), 3.0)).tolist() == [0.0, 0.0]


def test_aliased_fraction_of_blurred_noise_matches_filter_response():
    """White noise through a aᵀ: per axis the in-band share g of Σ_k |A(2πk/n)|², aliased fraction 1 - g²."""
    from shiftlab import layers
    n = 64
    x = _rand(32, 1, n, n, seed=7)
    for m in (1, 2, 3, 5):
        _, response = layers.frequency_response(m, n=n // 2 + 1)  # the DFT bins 2πk/n, k = 0..n/2
        energy = response ** 2
        per_bin = torch.cat([energy, energy[1:-1]])  # k and -k, k = 1..n/2-1
        g = (energy[0] + 2 * energy[1:n // 4 + 1].sum()) / per_bin.sum()
        blurred = layers.BlurPool(1, m, stride=1, pad_mode="circular")(x)
        assert spectra.aliased_fraction(blurred).mean().item() == pytest.approx(1 - g.item() ** 2, abs=0.01)


def test_fourier_shift_by_whole_cells_is_a_roll():
    f = _rand(2, 3, 8, 6, seed=3)
    for ty, tx in [(0, 0), (1, 0), (3, 5), (-2, 1)]:
        torch.testing.assert_close(shifts.fourier_shift(f, ty, tx), torch.roll(f, (ty, tx), (-2, -1)),
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(8, 6), (7, 9)])
def test_fourier_shift_on_half_the_spectrum_is_the_full_spectrum_shift(size):
    """F^-1[F(f) ramp] is real for a real f (the ramp keeps the spectrum Hermitian), so rfft2 / irfft2 give it."""
    f = _rand(2, 3, *size, seed=4)
    h, w = size
    ky, kx = torch.fft.fftfreq(h), torch.fft.fftfreq(w)
    for ty, tx in [(0.3, -1.7), (0.5, 0.5), (2, 1)]:
        full = torch.fft.fft2(f) * shifts._phase_ramp(ky, ty, h)[:, None] * shifts._phase_ramp(kx, tx, w)[None, :]
        want = torch.fft.ifft2(full).real
        torch.testing.assert_close(shifts.fourier_shift(f, ty, tx), want, atol=2e-6, rtol=0)
        torch.testing.assert_close(shifts.fourier_shift(f, ty, tx, torch.fft.rfft2(f)), want, atol=2e-6, rtol=0)


@pytest.mark.parametrize("stride", [2, 4])
def test_fourier_shift_distance_is_zero_for_a_band_limited_map_at_every_shift(stride):
    """x band-limited below the coarse Nyquist: x[::s] of roll(x, d) is the band-limited shift of x[::s] by d/s."""
    n = 32
    i = torch.arange(n, dtype=torch.float64)
    x = (torch.cos(2 * torch.pi * (2 * i[:, None] + 3 * i[None, :]) / n + 0.4)
         + 0.5 * torch.sin(2 * torch.pi * i[:, None] / n))[None, None].float()
    ref = x[..., ::stride, ::stride]
    for dy, dx in [(1, 0), (0, 1), (1, 3), (5, 2)]:
        f = torch.roll(x, (dy, dx), (-2, -1))[..., ::stride, ::stride]
        assert metrics.fourier_shift_distance(f, ref, stride, dy, dx).item() < 1e-5, (stride, dy, dx)
        nearest = ref.repeat_interleave(stride, -2).repeat_interleave(stride, -1)
        up_f = f.repeat_interleave(stride, -2).repeat_interleave(stride, -1)
        blocky = 1 - F.cosine_similarity(up_f.flatten(1), torch.roll(nearest, (dy, dx), (-2, -1)).flatten(1)).item()
        assert blocky > 1e-3  # what nearest upsampling would report for the same alias-free map


def test_fourier_shift_distance_sees_aliasing():
    """A cosine above the coarse Nyquist folds: its subsampled map moves the wrong way, the distance is large."""
    n, stride = 32, 2
    i = torch.arange(n, dtype=torch.float64)
    x = torch.cos(2 * torch.pi * 11 * i[None, :] / n).expand(n, n)[None, None].float()
    f = torch.roll(x, (0, 1), (-2, -1))[..., ::stride, ::stride]
    assert metrics.fourier_shift_distance(f, x[..., ::stride, ::stride], stride, 0, 1).item() > 0.5


def test_agreement_is_the_per_image_consistency():
    n, h, w, m = 30, 10, 12, 4
    x = torch.zeros(n, 1, h, w)
    x[torch.arange(n), 0, torch.arange(n) % h, (3 * torch.arange(n)) % w] = 1.0
    agree = protocols.agreement(_BrightestColumnHalf(), x, "roll", m, seed=2)
    assert agree.dtype == torch.bool and agree.shape == (n,)
    assert agree.float().mean().item() == protocols.consistency(_BrightestColumnHalf(), x, "roll", m, seed=2)


def test_flips_per_image_by_hand():
    preds = torch.tensor([[0, 0, 1, 1, 0], [2, 2, 2, 2, 2]])
    assert metrics.flips_per_image(preds).tolist() == [0.5, 0.0]
    assert metrics.flip_rate(preds) == 0.25


def test_embedded_probs_at_stacks_one_placement_per_row(circ_net):
    objects = _rand(3, 1, 28, 28, seed=4)
    placements = [(20, 8, 8), (20, 9, 9), (14, 0, 30)]
    got = protocols.embedded_probs_at(circ_net, objects, 48, placements)
    assert got.shape == (3, 3, 10)
    for row, (s, y, x) in zip(got, placements, strict=True):
        assert torch.equal(row, protocols.embedded_probs(circ_net, objects, 48, s, y, x))
    assert not torch.equal(got[0], got[2])


def test_shift_grid_correct_is_periodic_in_the_total_stride(circ_net, images):
    labels = inference.predict_logits(circ_net, images).argmax(1)
    s = circ_net.cfg.total_stride
    small = protocols.shift_grid_correct(circ_net, images, labels, s)
    full = protocols.shift_grid_correct(circ_net, images, labels, SIZE)
    assert small.shape == (s * s, len(images)) and full.shape == (SIZE * SIZE, len(images))
    assert small[0].all(), "unshifted, every image gets its own prediction"
    assert torch.equal(small.all(0), full.all(0))


def test_fractional_shift_predictions_at_whole_pixels_are_rolls(circ_net, images):
    got = protocols.fractional_shift_predictions(circ_net, images, [(0, 0), (0, 1), (2, 3), (0, 0.5)])
    assert got.shape == (4, len(images))
    for row, (dy, dx) in zip(got[:3], [(0, 0), (0, 1), (2, 3)], strict=True):
        assert torch.equal(row, inference.predict_logits(circ_net, shifts.roll(images, dy, dx)).argmax(1))


def test_reduced_precision_evaluation_keeps_predictions_and_consistency(tmp_path):
    """fp16 autocast (for the ImageNet sections on a GPU) gives the fp32 predictions on >= 99 % of a fixed batch
    and consistency within 1 point; the evaluation cache keys it apart from fp32."""
    from shiftlab import data, evalcache, runtime, zoo

    net, _ = zoo.get("baseline", n_train=2000, epochs=1, cache_dir=tmp_path, progress=False)
    test = data.load("fashion_mnist", "test").subset(500, 0)
    x = test.as_float(32)
    fp32 = inference.predict_logits(net, x).argmax(1)
    fp32_cons = protocols.consistency(net, x, "roll", 4)
    key32 = evalcache.eval_key(["k"], "m", {})
    try:
        runtime.set_precision("fp16")
        fp16 = inference.predict_logits(net, x).argmax(1)
        assert (fp16 == fp32).float().mean() >= 0.99
        assert abs(protocols.consistency(net, x, "roll", 4) - fp32_cons) <= 0.01
        assert evalcache.eval_key(["k"], "m", {}) != key32
    finally:
        runtime.set_precision("fp32")
    with pytest.raises(ValueError, match="precision='fp8' is invalid; valid: fp32, bf16, fp16"):
        runtime.set_precision("fp8")


def test_batched_outputs_are_ordinary_tensors():
    """Evaluation runs under inference_mode, but what it returns can be changed in place and used in autograd."""
    net = models.build(models.ModelConfig()).eval()
    out = inference.predict_logits(net, torch.rand(5, 1, 32, 32), batch_size=2)
    assert not out.is_inference() and out.shape == (5, 10)
    out.mul_(2)
    w = torch.ones(10, requires_grad=True)
    (out * w).sum().backward()
    torch.testing.assert_close(w.grad, out.sum(0))


def test_period_gap_is_zero_exactly_at_the_period():
    curves = torch.tensor([[0.1, 0.9, 0.1, 0.9, 0.1], [0.5, 0.2, 0.5, 0.2, 0.5]])
    assert metrics.period_gap(curves, 2) == 0.0
    assert metrics.period_gap(curves, 1) == pytest.approx(0.8)


@pytest.mark.parametrize("filt_size", [2, 3, 5])
def test_a_blurred_last_subsampling_under_global_pooling_is_invariant_to_half_the_stride(filt_size, images):
    """A binomial filter of size >= 2 has no response at Nyquist, so every phase of the last subsampling has the same
    global average: a circular VGG-like with MaxBlurPool is exactly invariant to shifts by S/2, MaxPool is not."""
    torch.manual_seed(0)
    blurred = models.build(models.ModelConfig(downsample="maxblur", filt_size=filt_size, padding="circular",
                                              widths=(4, 8))).eval()
    torch.manual_seed(0)
    plain = models.build(models.ModelConfig(downsample="max", padding="circular", widths=(4, 8))).eval()
    half = blurred.cfg.total_stride // 2
    with torch.no_grad():
        for net, exact in ((blurred, True), (plain, False)):
            out, moved = net(images), net(shifts.roll(images, half, half))
            assert torch.allclose(out, moved, rtol=1e-5, atol=1e-6) is exact


def test_shift_consistency_reports_accuracy_at_the_pairs_shifts_by_hand():
    n, m, seed = 30, 4, 3
    g = torch.Generator().manual_seed(7)
    frames = torch.zeros(n, 1, 32 + 2 * m, 32 + 2 * m)
    cols = torch.randint(m, 32 + m, (n,), generator=g)
    frames[torch.arange(n), 0, 20, cols] = 1.0
    labels = torch.randint(0, 2, (n,), generator=g)
    out = protocols.shift_consistency(_BrightestColumnHalf(), frames, labels, m, seed)
    (_, adx), (_, bdx) = protocols.pair_offsets(n, m, seed)
    x_cols = cols - m                                           # the centred window's columns
    side = {k: ((x_cols + d) % 32 >= 16).long() for k, d in (("a", adx), ("b", bdx))}
    expected = ((side["a"] == labels).float() + (side["b"] == labels).float()) / 2
    assert torch.equal(out["accuracy circular"], expected) and 0 < expected.mean() < 1
    assert torch.equal(out["agree circular"], side["a"] == side["b"])
    assert out["accuracy crop"].shape == (n,) and set(out["accuracy crop"].tolist()) <= {0.0, 0.5, 1.0}
