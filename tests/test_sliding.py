"""Sliding windows: one dense pass equals the window loop exactly on the lattice of multiples of S,
for a network without padding, and only approximately with padding."""
import pytest
import torch

from shiftlab import models, sliding


def _net(padding: str, seed: int = 0):
    torch.manual_seed(seed)
    net = models.build(models.ModelConfig(padding=padding))
    for m in net.modules():    # non-trivial batch-norm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_dense_pass_equals_window_loop_on_the_lattice_without_padding(seed):
    net = _net("valid", seed)
    scene = torch.rand(2, 1, 112, 96, generator=torch.Generator().manual_seed(seed))
    dense = sliding.dense_window_logits(net, scene, 64)
    ys, xs = sliding.lattice_offsets(112, 64, 8), sliding.lattice_offsets(96, 64, 8)
    assert dense.shape == (2, 10, len(ys), len(xs)) == (2, 10, 7, 5)
    loop = sliding.window_loop_logits(net, scene, 64, [(y, x) for y in ys for x in xs])
    got = dense.permute(2, 3, 0, 1).reshape(len(ys) * len(xs), 2, 10)
    assert (got - loop).abs().max() < 1e-5


def test_with_padding_the_dense_pass_only_approximates_the_loop():
    net = _net("zeros")
    scene = torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(0))
    dense = sliding.dense_window_logits(net, scene, 64)
    loop = sliding.window_loop_logits(net, scene, 64, [(8, 16)])
    assert dense.shape == (1, 10, 5, 5)
    assert (dense[0, :, 1, 2] - loop[0, 0]).abs().max() > 1e-3


def test_window_larger_than_scene_is_refused():
    with pytest.raises(ValueError, match="valid: window <= scene size"):
        sliding.lattice_offsets(32, 64, 8)
