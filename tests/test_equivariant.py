"""Rotations: the C8 network is exactly invariant to 90° rotations (e2cnn), a plain CNN is not; rotation
by multiples of 90° is exact; circular-harmonic responses rotate with the image."""
import pytest
import torch

from shiftlab import equivariant, models, shifts

pytest.importorskip("e2cnn", reason=equivariant.INSTALL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c8_network_is_invariant_to_90_degree_rotations_and_a_cnn_is_not(seed):
    torch.manual_seed(seed)
    c8 = models.build(models.ModelConfig(arch="c8", downsample="avg", padding="zeros", widths=(2, 4, 8))).eval()
    torch.manual_seed(seed)
    cnn = models.build(models.ModelConfig(padding="circular")).eval()
    x = torch.rand(8, 1, 33, 33, generator=torch.Generator().manual_seed(seed))
    assert c8.check_invariance(x, atol=1e-5) < 1e-5
    with pytest.raises(ValueError, match="odd sizes"):
        c8.check_invariance(x[..., :32, :32])
    body = c8.body
    c8.body = lambda z: body(z) + z[:, :1, :1, :1]     # a term that reads one corner pixel: not rotation invariant
    with pytest.raises(AssertionError, match="not invariant to a rotation by 90°"):
        c8.check_invariance(x, atol=1e-5)
    del c8.body
    with torch.no_grad():
        ref, cnn_ref = c8(x), cnn(x[..., :32, :32])
        for k in (1, 2, 3):
            assert (c8(shifts.rotate(x, 90.0 * k)) - ref).abs().max() < 1e-5
        assert (cnn(shifts.rotate(x[..., :32, :32], 90.0)) - cnn_ref).abs().max() > 1e-3
        assert (c8(shifts.rotate(x, 45.0 * torch.ones(8))) - ref).abs().max() > 1e-5, "45° is interpolated, not exact"


def test_c1_control_has_the_c8_networks_layers_without_the_rotation_constraint():
    """arch 'c1' is the C8 network's code for the trivial group: the same layer types in the same order and the same
    channels (16-32-64 = 2-4-8 fields of 8), more free parameters, no promise about quarter turns."""
    torch.manual_seed(0)
    c8 = models.build(models.ModelConfig(arch="c8", downsample="avg", padding="zeros", widths=(2, 4, 8))).eval()
    c1 = models.build(models.ModelConfig(arch="c1", downsample="avg", padding="zeros", widths=(16, 32, 64))).eval()
    assert [type(m).__name__ for m in c1.body_e2.children()] == [type(m).__name__ for m in c8.body_e2.children()]
    assert [m.out_type.size for m in c1.body_e2.children()] == [m.out_type.size for m in c8.body_e2.children()]
    assert sum(p.numel() for p in c1.parameters()) > 4 * sum(p.numel() for p in c8.parameters())
    x = torch.rand(4, 1, 33, 33, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="C1 network does not contain the quarter turns"):
        c1.check_invariance(x)
    with torch.no_grad():
        assert (c1(torch.rot90(x, 1, dims=(-2, -1))) - c1(x)).abs().max() > 1e-4


def test_missing_e2cnn_names_the_install_command(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_e2cnn(name, *args, **kw):
        if name == "e2cnn" or name.startswith("e2cnn."):
            raise ImportError("No module named 'e2cnn'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_e2cnn)
    with pytest.raises(ImportError, match="pip install 'e2cnn==0.2.3'") as err:
        equivariant.require_e2cnn()
    assert "\n" not in str(err.value)


def test_rotation_by_multiples_of_90_is_exact_and_bilinear_agrees():
    x = torch.rand(3, 1, 9, 9)
    assert torch.equal(shifts.rotate(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)))
    assert torch.equal(shifts.rotate(x, 360.0), x)
    assert (shifts.rotate(x, torch.full((3,), 90.0)) - torch.rot90(x, 1, dims=(-2, -1))).abs().max() < 1e-5


@pytest.mark.parametrize("m", [0, 1, 2, 3])
def test_harmonic_response_magnitude_rotates_with_the_image(m):
    x = torch.zeros(1, 1, 31, 31)
    x[0, 0, 10:20, 12:16] = 1.0
    r = equivariant.harmonic_response(x, m)
    r90 = equivariant.harmonic_response(torch.rot90(x, 1, dims=(-2, -1)), m)
    assert (r90.abs() - torch.rot90(r.abs(), 1, dims=(-2, -1))).abs().max() < 1e-5
    # the phase turns by m * 90°
    centre = r.abs().argmax()
    i, j = divmod(int(centre), 31)
    turned = r90[0][30 - j, i] / r[0][i, j]
    assert abs(turned / abs(turned) - torch.exp(torch.tensor(1j * m * torch.pi / 2))) < 1e-4
