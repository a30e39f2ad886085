"""ONNX export: the file onnxruntime runs gives PyTorch's predictions on shifted images, and the exported APS network
keeps its invariance to circular shifts."""
import numpy as np
import pytest
import torch

from shiftlab import export, fast, shifts, zoo
from shiftlab.models import ModelConfig, build

ort = pytest.importorskip("onnxruntime", reason="the export extra installs onnxruntime: make setup")


def network(name: str) -> torch.nn.Module:
    """The zoo entry's architecture, seeded, accelerated as the zoo loads it, its batch norms fitted on noise."""
    torch.manual_seed(0)
    net = fast.accelerate(build(ModelConfig(**zoo.full_config(name, n_train=100, epochs=1, seed=0)["model"])))
    with torch.no_grad():
        net.train()(torch.rand(64, 1, 32, 32))
    return net.eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 32, 32, generator=g) * (torch.rand(16, 1, 1, 1, generator=g) > 0.2)


def session(net, path):
    out = export.to_onnx(net, path)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda x: s.run(None, {export.INPUT: x.numpy()})[0]


@pytest.mark.parametrize("name", ["baseline", "maxblur5", "aps"])
def test_onnx_file_matches_pytorch_on_shifted_images(name, images, tmp_path):
    net = network(name)
    run = session(net, tmp_path / f"{name}.onnx")
    assert fast.is_accelerated(net) == fast.enabled()       # the export left the network as it was
    shifted = torch.cat([shifts.shift(images, dy, dx, kind) for dy, dx in ((0, 0), (1, 3), (-2, 1))
                         for kind in ("roll", "crop")])
    with torch.no_grad():
        expected = net(shifted).softmax(1).numpy()
    got = torch.from_numpy(run(shifted)).softmax(1).numpy()
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert np.abs(got - expected).max() <= 1e-5


def test_exported_aps_is_invariant_to_circular_shifts_and_maxpool_is_not(images, tmp_path):
    changes = {}
    for name in ("aps", "baseline"):
        run = session(network(name), tmp_path / f"{name}.onnx")
        base = run(images)
        moved = [run(torch.roll(images, (dy, dx), (2, 3))) for dy in range(8) for dx in range(8)]
        changes[name] = max(float(np.abs(m - base).max()) for m in moved)
        if name == "aps":
            assert all((m.argmax(1) == base.argmax(1)).all() for m in moved)
    assert changes["aps"] <= 1e-5 < 1e-3 < changes["baseline"], changes
