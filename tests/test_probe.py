"""Linear probes: they find information that is there, and not information that is not."""
import torch

from shiftlab import models, probe


def test_probe_decodes_a_linearly_encoded_target_and_not_noise():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (600,), generator=g)
    informative = torch.randn(600, 8, generator=g) + 3.0 * torch.nn.functional.one_hot(targets, 8).float()
    noise = torch.randn(600, 8, generator=g)
    for feats, lo, hi in ((informative, 0.9, 1.0), (noise, 0.2, 0.5)):
        p = probe.fit_linear_probe(feats[:300], targets[:300], 3)
        acc = probe.probe_correct(p, feats[300:], targets[300:]).float().mean().item()
        assert lo <= acc <= hi, acc


def test_pooled_features_are_what_the_head_sees():
    torch.manual_seed(0)
    net = models.build(models.ModelConfig(padding="circular", widths=(4, 8))).eval()
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net.head(probe.pooled_features(net, x)), net(x), atol=1e-6)
