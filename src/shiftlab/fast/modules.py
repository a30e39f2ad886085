"""The accelerated modules: each subclasses a plain layer of ``shiftlab.layers`` / ``shiftlab.models`` with the same
parameters and buffers, and computes the same function through the compiled ops (``ops``) where they apply, else
through the plain layer's forward. ``shiftlab.fast.accelerate`` swaps them into a built model."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import layers
from ..layers import ApsPool, BlurPool, DenseMax, MaxApsPool, MaxBlurPool, blur_pads
from ..models import ConvBNReLU
from . import ops


class _CircularPad(torch.autograd.Function):
    """Circular padding written into one new map in x's memory format (F.pad's circular mode returns contiguous
    memory), with a backward that folds the padded border's gradient back onto the edges it copied."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
        ctx.pads = (left, right, top, bottom)
        h, w = x.shape[-2:]
        fmt = torch.channels_last if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty((*x.shape[:-2], h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                          memory_format=fmt)
        out[..., top:top + h, left:left + w] = x
        out[..., top:top + h, :left] = x[..., w - left:]
        out[..., top:top + h, left + w:] = x[..., :right]
        out[..., :top, :] = out[..., h:h + top, :]               # the last rows, already padded in width
        out[..., top + h:, :] = out[..., top:top + bottom, :]    # the first rows
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        left, right, top, bottom = ctx.pads
        h, w = grad.shape[-2] - top - bottom, grad.shape[-1] - left - right

        def fold_columns(rows: torch.Tensor) -> torch.Tensor:
            folded = rows[..., left:left + w].clone()
            folded[..., w - left:] += rows[..., :left]
            folded[..., :right] += rows[..., left + w:]
            return folded

        g = fold_columns(grad[..., top:top + h, :])
        if top:
            g[..., h - top:, :] += fold_columns(grad[..., :top, :])
        if bottom:
            g[..., :bottom, :] += fold_columns(grad[..., top + h:, :])
        return g, None, None, None, None


def circular_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """x padded by (left, right, top, bottom) with wrap-around: F.pad(x, pads, 'circular') in x's memory format."""
    h, w = x.shape[-2:]
    left, right, top, bottom = pads
    if max(left, right) > w or max(top, bottom) > h:
        raise ValueError(f"circular padding {pads} wraps more than once around a {h}x{w} map")
    return _CircularPad.apply(x, *pads)


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """layers.pad2d, with circular padding in x's memory format."""
    if mode == "circular" and any(pads):
        return circular_pad(x, pads)
    return layers.pad2d(x, pads, mode)


class FastConv2d(nn.Conv2d):
    """nn.Conv2d; circular padding kept in channels-last memory, and the one-channel stem on images as ops.stem_conv."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if ops.stem_conv_applies(self, x):
            return ops.stem_conv(self.padded(x), weight)
        if self.padding_mode != "circular":
            return super()._conv_forward(x, weight, bias)
        return F.conv2d(self.padded(x), weight, bias, self.stride, 0, self.dilation, self.groups)

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        """x padded by the layer's padding in its padding mode (channels-last kept for circular)."""
        return pad2d(x, self._reversed_padding_repeated_twice, self.padding_mode)


class FastConvBNReLU(ConvBNReLU):
    """ReLU . BN . Conv as ops.bn_relu after the conv; with pool=True, MaxPool_{2,2} of it in the same pass."""

    def forward(self, x: torch.Tensor, pool: bool = False) -> torch.Tensor:
        return ops.bn_relu(self[0](x), self[1], pool)


def _is_max_2x2(layer: nn.Module) -> bool:
    return (isinstance(layer, nn.MaxPool2d) and layer.kernel_size in (2, (2, 2)) and layer.stride in (2, (2, 2))
            and layer.padding in (0, (0, 0)) and layer.dilation in (1, (1, 1)) and not layer.ceil_mode)


class FusedBody(nn.Sequential):
    """nn.Sequential, with each FastConvBNReLU followed by a 2x2 MaxPool run as one step (MaxPool . ReLU . BN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        i = 0
        while i < len(layers):
            pooled = isinstance(layers[i], FastConvBNReLU) and i + 1 < len(layers) and _is_max_2x2(layers[i + 1])
            x = layers[i](x, pool=True) if pooled else layers[i](x)
            i += 2 if pooled else 1
        return x


class FastBlurPool(BlurPool):
    """BlurPool with circular padding kept in channels-last memory."""

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        return pad2d(x, blur_pads(self.filt_size), self.pad_mode)


class FastDenseMax(DenseMax):
    """Max_{2,1} as ops.dense_max (a byte per output for the backward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.dense_max(pad2d(x, (0, 1, 0, 1), self.pad_mode))


def _fused_max_blur(dense: DenseMax, blur: BlurPool, x: torch.Tensor) -> torch.Tensor | None:
    """Blur_m(Max_{2,1}(x)) at the blur's stride as one op (ops.maxblur) where it applies: a blur padded circularly
    (after a circular dense max) or by reflection (after a replicate one) on a CPU map; else None."""
    circular = blur.pad_mode == "circular"
    if (blur.filt_size == 1 or blur.pad_mode not in ("circular", "reflect")
            or (dense.pad_mode == "circular") != circular):
        return None
    if not ops.fused_maxblur_applies(x, blur.filt_size, circular):
        return None
    return ops.maxblur(x, blur.taps, blur.stride, circular)


class FastMaxBlurPool(MaxBlurPool):
    """MaxBlurPool as one op (ops.maxblur) where it applies, else its layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = _fused_max_blur(self[0], self[1], x)
        return fused if fused is not None else super().forward(x)


class FastApsPool(ApsPool):
    """ApsPool whose choice and copy of the l2-largest phase run as one op (ops.aps) where it applies."""

    def keep(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ops.fused_aps_applies(z, self.stride, self.norm):
            return ops.aps(z, self.stride)
        return super().keep(z)


class FastMaxApsPool(MaxApsPool):
    """MaxApsPool with the dense max and the blur at stride 1 as one op (ops.maxblur) where it applies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense, pool = self[0], self[1]
        blurred = None
        if pool.blur is not None:
            blurred = _fused_max_blur(dense, pool.blur, x)
        return super().forward(x) if blurred is None else pool.keep(blurred)[0]


SWAPS: dict[type, type] = {nn.Conv2d: FastConv2d, ConvBNReLU: FastConvBNReLU, BlurPool: FastBlurPool,
                           DenseMax: FastDenseMax, MaxBlurPool: FastMaxBlurPool, ApsPool: FastApsPool,
                           MaxApsPool: FastMaxApsPool}
