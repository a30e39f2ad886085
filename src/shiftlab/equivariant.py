"""A rotation-equivariant CNN (Weiler & Cesa 2019, the e2cnn library): steerable convolutions whose
features transform under the cyclic group C_N of rotations by 360°/N, pooled over the group at the end.

Exactly invariant to rotations by multiples of 90° on the pixel grid (they map the grid onto itself),
provided every sampling grid is symmetric about the image centre: odd input sizes (33 = 2^5 + 1 px),
and stride-2 pooling that keeps positions 0, 2, ..., 32 (33 -> 17 -> 9 -> 5). Between those angles,
rotating an image means interpolating it, so invariance is approximate.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

INSTALL = "pip install 'e2cnn==0.2.3'  (or: pip install -e '.[equivariant]')"


def require_e2cnn():
    """The e2cnn package, or an ImportError in one line naming the install command."""
    try:
        import e2cnn
    except ImportError as err:
        raise ImportError(f"the rotation-equivariant network needs the e2cnn package: {INSTALL}") from err
    return e2cnn


class C8Net(nn.Module):
    """Steerable VGG-like: per stage R2Conv (5x5, regular fields of C_N) - InnerBatchNorm - ReLU - anti-aliased
    average pooling (stride 2); then pooling over the group (max over each field's N rotations),
    global average pooling and a linear head. cfg.widths are numbers of regular fields (channels / N). With N = 1
    (arch 'c1') the same code gives the same layers for the trivial group: filters from the same band-limited basis
    (e2cnn's rings), not tied across rotations, ordinary batch norm, the same pooling, and no group to pool over
    (the head sees every channel)."""

    def __init__(self, cfg, n_rotations: int = 8):
        super().__init__()
        self.n_rotations = n_rotations
        e2 = require_e2cnn()
        gspaces, enn = e2.gspaces, e2.nn
        self.cfg = cfg
        space = gspaces.Rot2dOnR2(N=n_rotations) if n_rotations > 1 else gspaces.TrivialOnR2()
        self.in_type = enn.FieldType(space, cfg.in_channels * [space.trivial_repr])
        layers, t = [], self.in_type
        with warnings.catch_warnings():   # e2cnn 0.2.3 indexes with uint8 masks, which torch deprecates
            warnings.filterwarnings("ignore", message="indexing with dtype torch.uint8", category=UserWarning)
            for fields in cfg.widths:
                out = enn.FieldType(space, fields * [space.regular_repr])
                layers += [enn.R2Conv(t, out, 5, padding=2, bias=False), enn.InnerBatchNorm(out),
                           enn.ReLU(out, inplace=True), enn.PointwiseAvgPoolAntialiased(out, sigma=0.66, stride=2)]
                t = out
        self.body_e2 = enn.SequentialModule(*layers)
        self.group_pool = enn.GroupPooling(t)
        self.head = nn.Linear(len(self.group_pool.out_type), cfg.num_classes)
        self.layer_names = [f"s{k + 1}" for k in range(len(cfg.widths))]

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The rotation-invariant last feature map: (N, fields, h, w)."""
        from e2cnn.nn import GeometricTensor

        return self.group_pool(self.body_e2(GeometricTensor(x.contiguous(), self.in_type))).tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))

    @torch.no_grad()
    def check_invariance(self, x: torch.Tensor, atol: float = 1e-4) -> float:
        """The largest |f(rot90(x, k)) - f(x)| over the logits and the quarter turns k = 1, 2, 3 (in eval mode, odd
        frames): C_8 contains the quarter turns, and they map the pixel grid onto itself, so the network is exactly
        invariant to them up to float rounding (e2cnn's check_equivariance, for the whole network). Raises
        AssertionError, naming the turn, when it exceeds atol."""
        if self.n_rotations % 4:
            raise ValueError(f"a C{self.n_rotations} network does not contain the quarter turns: it promises no "
                             "invariance to them (only C4, C8, ... do)")
        if x.shape[-1] % 2 == 0 or x.shape[-2] % 2 == 0:
            raise ValueError(f"a {x.shape[-2]}x{x.shape[-1]} frame: quarter turns keep every sampling grid only on odd "
                             "sizes (33 px in the zoo)")
        ref, worst = self(x), 0.0
        for k in (1, 2, 3):
            err = (self(torch.rot90(x, k, dims=(-2, -1))) - ref).abs().max().item()
            if err > atol:
                raise AssertionError(f"C8Net is not invariant to a rotation by {90 * k}°: {err:.3g} > {atol}")
            worst = max(worst, err)
        return worst


def circular_harmonic(m: int, size: int = 15, radius: float = 4.0, width: float = 1.5) -> torch.Tensor:
    """Harmonic Networks' filter W_m(r, φ) = R(r) e^{i m φ}, R = a Gaussian ring exp(-(r - radius)² / 2 width²),
    sampled on a size x size grid centred on its middle pixel (zero there unless m = 0), unit l1 norm:
    complex (size, size).
    Rotating the input by θ rotates |W_m * x| and multiplies the response's phase by e^{i m θ}."""
    c = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size) - c, torch.arange(size) - c, indexing="ij")
    r, phi = torch.hypot(xx.double(), yy.double()), torch.atan2(-yy.double(), xx.double())
    w = torch.exp(-(r - radius) ** 2 / (2 * width ** 2)) * torch.exp(1j * m * phi)
    if m:
        w[r == 0] = 0    # φ is undefined at the centre: only m = 0 may have weight there
    return (w / w.abs().sum()).to(torch.complex64)


def harmonic_response(x: torch.Tensor, m: int, **filter_kw) -> torch.Tensor:
    """(W_m * x) for (N, 1, H, W) images, zero padding to the same size: complex (N, H, W)."""
    w = circular_harmonic(m, **filter_kw)
    pad = w.shape[-1] // 2
    real = torch.nn.functional.conv2d(x, w.real[None, None].float(), padding=pad)
    imag = torch.nn.functional.conv2d(x, w.imag[None, None].float(), padding=pad)
    return torch.complex(real, imag)[:, 0]
