"""The CPU accelerator: compiled fused ops (``ops``, csrc/) swapped into a model after it is built.

``accelerate(model)`` replaces, in place, every plain layer that has a fast twin (``modules.SWAPS``) by that twin: the
same parameters, buffers and state-dict keys, the same function within float rounding, fewer passes over memory. The
science (``shiftlab.layers``, ``shiftlab.models``) never imports this package; the zoo accelerates the models it
trains and loads. ``$SHIFTLAB_FAST=off`` leaves every model plain. ``plain(model)`` undoes the swap (for export, and
for the tests that compare both).
"""
from __future__ import annotations

from torch import nn

from . import ops
from .modules import SWAPS, FusedBody
from .ops import FAST_ENV, compiled, enabled, parallel_threads, torch_ops_only

PLAIN: dict[type, type] = {twin: layer for layer, twin in SWAPS.items()} | {FusedBody: nn.Sequential}

__all__ = ["FAST_ENV", "accelerate", "compiled", "enabled", "is_accelerated", "ops", "parallel_threads", "plain",
           "torch_ops_only"]


def accelerate(model: nn.Module) -> nn.Module:
    """model with its layers swapped for their fast twins (in place; returned for chaining), and every VGG-like body
    run with each ConvBNReLU + 2x2 MaxPool pair fused; model unchanged when the accelerator is switched off."""
    if not enabled():
        return model
    from ..models import VGGLike

    for module in model.modules():
        fast = SWAPS.get(type(module))
        if fast is not None:
            module.__class__ = fast
        if isinstance(module, VGGLike) and type(getattr(module, "body", None)) is nn.Sequential:
            module.body.__class__ = FusedBody
    return model


def plain(model: nn.Module) -> nn.Module:
    """model with every fast twin swapped back for its plain layer (in place; returned for chaining)."""
    for module in model.modules():
        original = PLAIN.get(type(module))
        if original is not None:
            module.__class__ = original
    return model


def is_accelerated(model: nn.Module) -> bool:
    """Whether any layer of model is a fast twin."""
    return any(type(m) in PLAIN for m in model.modules())
