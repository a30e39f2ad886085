"""Sliding windows for free: a network of convolutions, pooling and a global-average head, run once on
a large scene, computes its classifier on every window whose offset is a multiple of its total stride S.

Window at offset (S i, S j): its last feature map is the k x k block of the scene's last feature map at
(i, j), k = the side of a window's last map, when no layer pads ('valid' networks); the head averages
that block, so all windows at once are an average pooling (k x k, stride 1) followed by the head as a
1 x 1 convolution. With padding, a window's border sees padding where the scene has content: close, not equal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .inference import predict_logits


def window_cells(model: nn.Module, window: int) -> int:
    """k: the side of the last feature map of a window x window input."""
    p = next(model.parameters())
    with torch.no_grad():
        return model.body(torch.zeros(1, model.cfg.in_channels, window, window, device=p.device)).shape[-1]


def lattice_offsets(size: int, window: int, stride: int) -> list[int]:
    """The window offsets 0, S, 2S, ... at which a window x window window fits in a size-px scene."""
    if window > size:
        raise ValueError(f"a {window}-px window does not fit a {size}-px scene; valid: window <= scene size")
    return list(range(0, size - window + 1, stride))


@torch.no_grad()
def dense_window_logits(model: nn.Module, scene: torch.Tensor, window: int) -> torch.Tensor:
    """z[n, :, i, j] = the logits of the window x window window at (S i, S j) of scene n, all in one pass:
    head(avg_pool_k(body(scene))), k = window_cells(model, window): (N, K, H', W')."""
    model.eval()
    device = next(model.parameters()).device
    features = model.body(scene.to(device, memory_format=torch.channels_last))
    pooled = F.avg_pool2d(features, window_cells(model, window), stride=1)
    logits = torch.einsum("nchw,kc->nkhw", pooled, model.head.weight) + model.head.bias[None, :, None, None]
    return logits.float().cpu()


@torch.no_grad()
def window_loop_logits(model: nn.Module, scene: torch.Tensor, window: int,
                       offsets: list[tuple[int, int]]) -> torch.Tensor:
    """The classifier run on each window x window crop scene[..., y:y+w, x:x+w], one offset at a time: (P, N, K)."""
    return torch.stack([predict_logits(model, scene[..., y:y + window, x:x + window].contiguous()) for y, x in offsets])
