"""A network as an ONNX file that runs without PyTorch (onnxruntime, or any ONNX runtime).

The file is exported from a plain copy of the network (``fast.plain``: the compiled kernels swapped back for the
reference layers of ``shiftlab.layers``), with torch's TorchScript-based exporter at opset 20, the batch size left
free. Every
layer is made of standard ONNX operators: circular padding becomes Pad in 'wrap' mode, BlurPool a depthwise Conv,
APS's choice of polyphase component an ArgMax of the components' norms and a GatherElements, so the exported APS
network keeps its exact invariance to circular shifts (``tests/test_export.py`` checks it in onnxruntime).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from . import fast

INPUT, OUTPUT = "image", "logits"
OPSET = 20      # Pad's 'wrap' mode (circular padding) needs opset 19 or later


def to_onnx(net: nn.Module, path: str | Path, image_size: int = 32, channels: int = 1) -> Path:
    """Write net (left as it is) to path as ONNX: input 'image' (N, channels, image_size, image_size) in [0, 1],
    output 'logits' (N, classes)."""
    plain = fast.plain(copy.deepcopy(net)).cpu().float().eval()
    example = torch.zeros(2, channels, image_size, image_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # the exporter's notes on its own internals
        torch.onnx.export(plain, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return path
