"""Linear probes: what a network's pooled features say about something they were not trained on
(here, where the object is), measured on held-out images."""
from __future__ import annotations

import torch
from torch import nn

from .inference import batched_outputs


def pooled_features(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """g(x) = mean over positions of the last feature map (what a global-pooling head sees): (N, C)."""
    return batched_outputs(model, x, lambda m, xb: m.body(xb).mean((2, 3)), batch_size)


def fit_linear_probe(features: torch.Tensor, targets: torch.Tensor, n_classes: int, seed: int = 0,
                     weight_decay: float = 1e-3, steps: int = 300) -> nn.Module:
    """Multinomial logistic regression on standardised features (full batch, L-BFGS, L2 penalty):
    argmin_W mean CE(W z, t) + weight_decay ||W||², z = (g - mean) / sd of the training features."""
    torch.manual_seed(seed)
    mean, sd = features.mean(0), features.std(0).clamp_min(1e-6)
    linear = nn.Linear(features.shape[1], n_classes)
    z = (features - mean) / sd
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(z), targets) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    probe = nn.Sequential(_Standardise(mean, sd), linear)
    return probe.eval()


class _Standardise(nn.Module):
    def __init__(self, mean: torch.Tensor, sd: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("sd", sd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.sd


@torch.no_grad()
def probe_correct(probe: nn.Module, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1[argmax probe(g) == t] per held-out sample."""
    return probe(features).argmax(1) == targets
