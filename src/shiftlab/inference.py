"""Running a model on a batch of images: eval mode, no gradient, in batches, at the evaluation precision
(``runtime.set_precision``)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from . import runtime


def batched_outputs(model: nn.Module, x: torch.Tensor,
                    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                    batch_size: int = 128) -> torch.Tensor:
    """forward(model, x_b) (default model(x_b)) over batches x_b of x, in eval mode, on the model's device, under
    torch.inference_mode at the evaluation precision (``runtime.set_precision``); concatenated as float32 on the
    CPU, outside inference mode, so the result is an ordinary tensor (free to change in place or use in autograd)."""
    model.eval()
    device = next(model.parameters()).device
    forward = forward or (lambda m, xb: m(xb))
    with torch.inference_mode(), runtime.autocast(device):
        parts = [forward(model, x[i:i + batch_size].to(device, memory_format=torch.channels_last)).float().cpu()
                 for i in range(0, len(x), batch_size)]
    return torch.cat(parts)


def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Logits of model on x (``batched_outputs``): (N, K) on the CPU."""
    return batched_outputs(model, x, batch_size=batch_size)


def predict_probs(model: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Softmax outputs f(x) of model on x: (N, K)."""
    return predict_logits(model, x, batch_size).softmax(1)
