"""The ImageNet-C corruptions: valid images out, ordered by severity, reproducible draws; the error table's
formulas."""
import pandas as pd
import pytest
import torch

from shiftlab import corruptions as C


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(16, 1, 32, 32)
    x[:, :, 6:26, 10:22] = 0.3 + 0.6 * torch.rand(16, 1, 20, 12, generator=g)    # an item on black, like the data
    return x


@pytest.mark.parametrize("kind", C.CORRUPTIONS)
def test_every_corruption_keeps_shape_and_range_and_grows_with_severity(images, kind):
    distances = []
    for severity in range(1, 6):
        y = C.corrupt(images, kind, severity, seed=1)
        assert y.shape == images.shape and y.dtype == images.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        distances.append(float((y - images).abs().mean()))
    assert distances[0] > 0, f"{kind} at severity 1 leaves the image unchanged"
    assert distances[-1] > distances[0], f"{kind}: severity 5 is no further from the image than severity 1"


@pytest.mark.parametrize("kind", ["gaussian noise", "shot noise", "impulse noise", "motion blur"])
def test_random_corruptions_are_reproducible_from_their_seed(images, kind):
    assert torch.equal(C.corrupt(images, kind, 3, seed=4), C.corrupt(images, kind, 3, seed=4))
    assert not torch.equal(C.corrupt(images, kind, 3, seed=4), C.corrupt(images, kind, 3, seed=5))


def test_disk_kernel_is_normalised_symmetric_and_covers_its_area():
    k = C.disk(1.43)
    assert torch.isclose(k.sum(), torch.tensor(1.0))
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T)
    assert k[k.shape[0] // 2, k.shape[1] // 2] == k.max()


def test_pixelate_at_ratio_one_and_a_half_pixel_blur_are_mild(images):
    assert torch.allclose(C.pixelate(images, 1.0), images)
    assert torch.allclose(C.zoom_blur(images, 0.0, 0.01), images, atol=1e-6)


def test_bad_corruption_or_severity_names_what_is_valid(images):
    with pytest.raises(ValueError, match="valid: gaussian noise"):
        C.corrupt(images, "fog", 1)
    with pytest.raises(ValueError, match="valid: 1..5"):
        C.corrupt(images, "contrast", 6)


def test_error_table_follows_hendrycks_formulas():
    rows = []
    errors = {"ref": {"gaussian noise": 0.4, "contrast": 0.2}, "other": {"gaussian noise": 0.3, "contrast": 0.3}}
    for net, err in errors.items():
        rows.append({"network": net, "seed": 0, "corruption": "none", "severity": 0, "accuracy": 0.9})
        rows += [{"network": net, "seed": 0, "corruption": c, "severity": s, "accuracy": 1 - e}
                 for c, e in err.items() for s in range(1, 6)]
    t = C.error_table(pd.DataFrame(rows), reference="ref").set_index("network")
    assert t.loc["ref", "mCE"] == pytest.approx(1) and t.loc["ref", "relative mCE"] == pytest.approx(1)
    assert t.loc["other", "unnormalised mCE"] == pytest.approx(0.3)
    assert t.loc["other", "mCE"] == pytest.approx((0.3 / 0.4 + 0.3 / 0.2) / 2)
    assert t.loc["other", "relative mCE"] == pytest.approx((0.2 / 0.3 + 0.2 / 0.1) / 2)
    assert t.loc["other", "contrast added"] == pytest.approx(0.2)
