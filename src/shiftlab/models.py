"""Small VGG-like and ResNet-like networks for 28-64 px inputs.

VGG-like: ``stages`` blocks of [conv3x3-BN-ReLU] x convs_per_stage followed by a stride-2
downsampling of a chosen kind (fixed subsampling: max, maxblur, strided, convblur, avg, blur; adaptive
polyphase sampling: maxaps, convaps, with a blur first when filt_size > 1), then global average pooling and
a linear classifier, or (like VGG16 and AlexNet) a fully connected layer on the flattened map of a
fixed-size input.
C8 (rotation-equivariant, ``shiftlab.equivariant``, needs e2cnn): steerable convolutions, see there; C1 is the same
code for the trivial group: the same layers and filter basis without the rotation constraint (its control).
STN: a spatial-transformer front end (a learned translation) before the VGG-like.
ResNet-like: a conv3x3-BN-ReLU stem, then one residual block per stage whose first conv has
stride 2 (shortcut: 1x1 conv with stride 2 + BN), then global average pooling and a linear layer.
Both have total stride S = 2**stages.
ResNet-18: the CIFAR ResNet-18 of the APS and BlurPool papers (paper profile), subsampling by strided convs,
a blur (convblur) or APS (convaps), S = 2**(stages - 1).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from .data import NORMALISATION
from .layers import FILTER_SIZES, ApsPool, BlurPool, ConvBlurPool, MaxApsPool, MaxBlurPool

APS_KINDS = ("maxaps", "convaps")
DOWNSAMPLE_KINDS = ("max", "maxblur", "strided", "convblur", "avg", "blur", *APS_KINDS)
ARCHS = ("vgg", "resnet", "resnet18", "c8", "c1", "stn")
STEERABLE_ARCHS = {"c8": 8, "c1": 1}     # e2cnn networks and the order N of their rotation group C_N
RESIDUAL_ARCHS = ("resnet", "resnet18")
RESNET18_DOWNSAMPLE = ("strided", "convblur", "convaps")
PADDING_MODES = ("zeros", "circular", "reflect")
NO_PADDING = "valid"     # 'valid' convolutions: every output sees only real input (sliding windows, chapter 14)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an architecture; its dict is part of the model cache key."""

    downsample: str = "max"
    filt_size: int = 1
    padding: str = "zeros"
    widths: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: int = 1
    in_channels: int = 1
    num_classes: int = 10
    arch: str = field(default="vgg")
    fc_input: int = 0
    normalize: str = ""      # a dataset whose per-channel mean and std the network subtracts and divides by first
    subsampling_stages: int = 0     # arch 'vgg': only the first k stages subsample, the rest keep the size (0: all)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        _check(self.arch in ARCHS, f"arch={self.arch!r} is invalid; valid: {', '.join(ARCHS)}")
        _check(self.arch != "resnet" or self.downsample == "strided",
               f"arch='resnet' downsamples with strided convolutions; downsample={self.downsample!r} is invalid")
        _check(self.arch != "resnet18" or (self.downsample in RESNET18_DOWNSAMPLE and len(self.widths) >= 2
                                           and self.padding in PADDING_MODES and not self.fc_input),
               f"arch='resnet18' needs downsample in {', '.join(RESNET18_DOWNSAMPLE)} (got {self.downsample!r}), "
               f"two or more widths (got {self.widths}), padding in {', '.join(PADDING_MODES)} and global pooling")
        _check(self.arch not in STEERABLE_ARCHS or (self.downsample == "avg" and self.padding == "zeros"
                                                     and not self.fc_input),
               f"arch={self.arch!r} (e2cnn's steerable layers) has its own layers; valid: downsample='avg', "
               "padding='zeros'")
        _check(self.downsample in DOWNSAMPLE_KINDS,
               f"downsample={self.downsample!r} is invalid; valid: {', '.join(DOWNSAMPLE_KINDS)}")
        _check(self.filt_size in FILTER_SIZES, f"filt_size={self.filt_size} is invalid; valid: 1..7")
        _check(self.padding in PADDING_MODES or (self.padding == NO_PADDING and self.arch == "vgg"
                                                  and self.downsample == "max" and not self.fc_input),
               f"padding={self.padding!r} is invalid; valid: {', '.join(PADDING_MODES)}, or {NO_PADDING!r} "
               "(no padding, for the VGG-like with MaxPool and global pooling)")
        _check(self.normalize == "" or (self.normalize in NORMALISATION and NORMALISATION[self.normalize] is not None
                                        and self.arch in ("vgg", *RESIDUAL_ARCHS)),
               f"normalize={self.normalize!r} is invalid; valid: '' (none) or, for arch 'vgg', 'resnet' or "
               f"'resnet18', one of {', '.join(repr(k) for k, v in NORMALISATION.items() if v is not None)}")
        _check(len(self.widths) >= 1 and all(w >= 1 for w in self.widths),
               f"widths={self.widths} is invalid; valid: one or more positive integers")
        _check(self.convs_per_stage >= 1, f"convs_per_stage={self.convs_per_stage} is invalid; valid: >= 1")
        _check(self.subsampling_stages == 0
               or (self.arch == "vgg" and 1 <= self.subsampling_stages <= len(self.widths)),
               f"subsampling_stages={self.subsampling_stages} is invalid; valid: 0 (every stage subsamples) or, for "
               f"arch 'vgg', 1..{len(self.widths)} (the number of stages)")
        _check(self.fc_input == 0 or (self.arch == "vgg" and self.fc_input % self.total_stride == 0),
               f"fc_input={self.fc_input} is invalid; valid: 0 (global average pooling) or, for arch 'vgg', "
               f"an input size divisible by the total stride {self.total_stride}")

    @property
    def total_stride(self) -> int:
        """S = 2**(stride-2 stages): the input shift that moves the last feature map by exactly one cell (every
        stage subsamples, except the first of the ResNet-18 and those after subsampling_stages)."""
        if self.subsampling_stages:
            return 2 ** self.subsampling_stages
        return 2 ** (len(self.widths) - (self.arch == "resnet18"))

    def to_dict(self) -> dict:
        """The fields as a dict; fc_input, normalize and subsampling_stages only when set, so keys of earlier caches
        stay valid."""
        d = asdict(self)
        for optional in ("fc_input", "normalize", "subsampling_stages"):
            if not d[optional]:
                del d[optional]
        return d


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


class ConvBNReLU(nn.Sequential):
    """ReLU . BN . Conv_{3, stride} (padded by 1 px with the padding mode, or not at all when 'valid')."""

    def __init__(self, cin: int, cout: int, padding: str, stride: int = 1):
        valid = padding == NO_PADDING
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=0 if valid else 1,
                      padding_mode="zeros" if valid else padding, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


def _blur_pad(padding: str) -> str:
    """Blur padding: circular in circular nets (keeps exact periodicity), else reflect as in Zhang."""
    return "circular" if padding == "circular" else "reflect"


def _stage(cfg: ModelConfig, index: int, cin: int, cout: int) -> list[tuple[str, nn.Module]]:
    """The named layers of one stage: convs, then the stride-2 downsampling of kind cfg.downsample (none in the
    stages after the first cfg.subsampling_stages, when that is set)."""
    name = f"s{index + 1}"
    layers = [(f"{name}.conv{j + 1}", ConvBNReLU(cin if j == 0 else cout, cout, cfg.padding))
              for j in range(cfg.convs_per_stage - 1)]
    if cfg.subsampling_stages and index >= cfg.subsampling_stages:
        return [*layers, (f"{name}.conv{cfg.convs_per_stage}",
                          ConvBNReLU(cin if cfg.convs_per_stage == 1 else cout, cout, cfg.padding))]
    last_in = cin if cfg.convs_per_stage == 1 else cout
    kind, pad = cfg.downsample, _blur_pad(cfg.padding)
    last = f"{name}.conv{cfg.convs_per_stage}"
    if kind == "strided":
        return layers + [(last, ConvBNReLU(last_in, cout, cfg.padding, stride=2))]
    if kind == "convblur":
        return layers + [(last, ConvBlurPool(last_in, cout, cfg.filt_size, 2, pad, conv_padding=cfg.padding))]
    if kind == "convaps":    # the strided conv with its fixed subsampling replaced by [blur +] APS
        return layers + [(last, ConvBNReLU(last_in, cout, cfg.padding)),
                         (f"{name}.aps", ApsPool(cout, cfg.filt_size, 2, pad))]
    layers.append((last, ConvBNReLU(last_in, cout, cfg.padding)))
    down = {
        "max": lambda: nn.MaxPool2d(2, 2),
        "maxblur": lambda: MaxBlurPool(cout, cfg.filt_size, 2, pad),
        "avg": lambda: nn.AvgPool2d(2, 2),
        "blur": lambda: BlurPool(cout, cfg.filt_size, 2, pad),
        "maxaps": lambda: MaxApsPool(cout, cfg.filt_size, 2, pad),
    }[kind]()
    return layers + [(f"{name}.{kind}", down)]


class Normalize(nn.Module):
    """(x - mean_c) / std_c per channel: a dataset's standard normalisation, as the network's first layer (so
    black, zero padding and zero-filled shifts stay 0 in the images every protocol builds)."""

    def __init__(self, dataset: str):
        super().__init__()
        mean, std = NORMALISATION[dataset]
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _body(cfg: ModelConfig, layers: list[tuple[str, nn.Module]]) -> nn.Sequential:
    """The named layers as one Sequential, after the input normalisation when the config asks for one."""
    first = [("input_norm", Normalize(cfg.normalize))] if cfg.normalize else []
    return nn.Sequential(OrderedDict(first + [(n.replace(".", "_"), m) for n, m in layers]))


class VGGLike(nn.Module):
    """Stages of conv3x3-BN-ReLU + stride-2 downsampling, global average pool, linear head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[tuple[str, nn.Module]] = []
        cin = cfg.in_channels
        for i, cout in enumerate(cfg.widths):
            layers += _stage(cfg, i, cin, cout)
            cin = cout
        self.body = _body(cfg, layers)
        self.layer_names = [n for n, _ in layers]
        cells = (cfg.fc_input // cfg.total_stride) ** 2 if cfg.fc_input else 1
        self.head = nn.Linear(cin * cells, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """The output of every named layer of the body, in order (the input normalisation is not one)."""
        layers = list(self.body)
        if self.cfg.normalize:
            x, layers = layers[0](x), layers[1:]
        out = []
        for name, layer in zip(self.layer_names, layers, strict=True):
            x = layer(x)
            out.append((name, x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling and a linear layer, or (fc_input set) flattening and a fully connected layer."""
        f = self.body(x)
        return self.head(f.flatten(1) if self.cfg.fc_input else f.mean(dim=(2, 3)))

    @torch.no_grad()
    def check_shift_invariance(self, x: torch.Tensor, atol: float = 1e-4) -> float:
        """The largest |f(roll(x, d)) - f(x)| over the logits and every circular shift d of one S x S cell (eval mode).
        A network whose every subsampling is adaptive polyphase sampling, with circular padding and global average
        pooling, is exactly invariant to every circular shift (Chaman & Dokmanić 2021): no shift is a special case.
        Raises ValueError for a network that does not promise it, AssertionError (naming the shift) above atol."""
        cfg = self.cfg
        if cfg.downsample not in APS_KINDS or cfg.padding != "circular" or cfg.fc_input:
            raise ValueError(f"only APS networks with circular padding and global pooling are shift invariant; this "
                             f"one has downsample={cfg.downsample!r}, padding={cfg.padding!r}, fc_input={cfg.fc_input}")
        ref, worst, s = self(x), 0.0, cfg.total_stride
        for dy in range(s):
            for dx in range(s):
                err = (self(torch.roll(x, (dy, dx), dims=(-2, -1))) - ref).abs().max().item()
                if err > atol:
                    raise AssertionError(f"not invariant to the circular shift ({dy}, {dx}): {err:.3g} > {atol}")
                worst = max(worst, err)
        return worst


class BasicBlock(nn.Module):
    """ReLU(BN . Conv3 . ReLU . BN . Conv3_{stride 2}(x) + BN . Conv1_{stride 2}(x))."""

    def __init__(self, cin: int, cout: int, padding: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(cin, cout, padding, stride=2),
            nn.Conv2d(cout, cout, 3, padding=1, padding_mode=padding, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _residual_net(net: VGGLike, cfg: ModelConfig, blocks: Callable[[], list[tuple[str, nn.Module]]]) -> None:
    """Set up net as a conv3x3-BN-ReLU stem (built first, so weights follow the RNG in layer order), the named
    blocks, global average pooling and a linear head."""
    nn.Module.__init__(net)
    net.cfg = cfg
    layers = [("stem", ConvBNReLU(cfg.in_channels, cfg.widths[0], cfg.padding)), *blocks()]
    net.body = _body(cfg, layers)
    net.layer_names = [n for n, _ in layers]
    net.head = nn.Linear(cfg.widths[-1], cfg.num_classes)


def _stage_inputs(cfg: ModelConfig) -> tuple[int, ...]:
    """The input width of each stage: the stem's, then the previous stage's."""
    return (cfg.widths[0], *cfg.widths[:-1])


class ResNetLike(VGGLike):
    """Stem conv3x3-BN-ReLU, one stride-2 residual block per stage, global average pool, linear head."""

    def __init__(self, cfg: ModelConfig):
        _residual_net(self, cfg, lambda: [
            (f"s{i + 1}.block", BasicBlock(cin, cout, cfg.padding))
            for i, (cin, cout) in enumerate(zip(_stage_inputs(cfg), cfg.widths, strict=True))])


class ResidualBlock(nn.Module):
    """He et al.'s basic block, ReLU(BN . Conv3 . D . ReLU . BN . Conv3(x) + shortcut(x)). At stride 2 the
    subsampling D is: the first conv's stride ('strided'; shortcut Conv1 stride 2); Subsample_2 . Blur_m after it
    ('convblur', Zhang's ResNet; shortcut Conv1 . Subsample_2 . Blur_m); APS_2 [. Blur_m] after it ('convaps', Chaman
    & Dokmanić's; the shortcut subsamples x at the phase the main path chose, so both keep one sampling grid).
    The shortcut is BN . Conv1 when the block subsamples or changes width, else the identity."""

    def __init__(self, cin: int, cout: int, stride: int, padding: str, downsample: str = "strided", filt_size: int = 1):
        super().__init__()
        self.adaptive = stride == 2 and downsample == "convaps"
        fixed_stride = stride if downsample == "strided" else 1
        self.conv1 = ConvBNReLU(cin, cout, padding, stride=fixed_stride)
        pad = _blur_pad(padding)
        self.down = self.short_down = None
        if stride == 2 and downsample == "convblur":
            self.down, self.short_down = BlurPool(cout, filt_size, 2, pad), BlurPool(cin, filt_size, 2, pad)
        elif self.adaptive:
            self.down, self.short_down = ApsPool(cout, filt_size, 2, pad), ApsPool(cin, filt_size, 2, pad)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, padding_mode=padding, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=fixed_stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        if self.adaptive:
            h, phase = self.down.subsample(h)
            x = self.short_down(x, phase)
        elif self.down is not None:
            h, x = self.down(h), self.short_down(x)
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(VGGLike):
    """The CIFAR ResNet-18 (He et al. 2016, as in the APS and BlurPool papers' CIFAR-10 tables): a conv3x3-BN-ReLU
    stem, two basic blocks per stage, every stage but the first subsampling in its first block; widths 64-128-256-512
    at the paper profile's width_factor 4 (16-32-64-128 at scale 1); global average pool, linear head."""

    def __init__(self, cfg: ModelConfig):
        _residual_net(self, cfg, lambda: [
            (f"s{i + 1}.block{j + 1}", ResidualBlock(cout if j else cin, cout, 2 if i > 0 and j == 0 else 1,
                                                     cfg.padding, cfg.downsample, cfg.filt_size))
            for i, (cin, cout) in enumerate(zip(_stage_inputs(cfg), cfg.widths, strict=True)) for j in range(2)])


def build(cfg: ModelConfig) -> nn.Module:
    """Instantiate the network described by cfg (weights from the current torch RNG state)."""
    if cfg.arch in STEERABLE_ARCHS:
        from .equivariant import C8Net

        return C8Net(cfg, n_rotations=STEERABLE_ARCHS[cfg.arch])
    if cfg.arch == "stn":
        return SpatialTransformer(cfg)
    return {"resnet": ResNetLike, "resnet18": ResNet18}.get(cfg.arch, VGGLike)(cfg)


class SpatialTransformer(nn.Module):
    """A spatial-transformer front end (Jaderberg et al. 2015) before the VGG-like: a small localisation
    net (convolutions, a 4x4 adaptive pool that keeps coarse position, two linear layers) predicts a
    translation t = (t_x, t_y) per image, in units of half the image size (see ``translation``); the image is
    resampled at u + t (F.affine_grid + bilinear F.grid_sample, black outside) and classified. The last linear
    layer starts at zero, so training starts from the identity."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.classifier = VGGLike(replace(cfg, arch="vgg"))
        self.localise = nn.Sequential(
            nn.Conv2d(cfg.in_channels, 8, 7, stride=2, padding=3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(16 * 16, 32), nn.ReLU(inplace=True), nn.Linear(32, 2))
        nn.init.zeros_(self.localise[-1].weight)
        nn.init.zeros_(self.localise[-1].bias)
        self.head, self.layer_names = self.classifier.head, self.classifier.layer_names

    def translation(self, x: torch.Tensor) -> torch.Tensor:
        """t = tanh(0.1 l(x)) per image, (t_x, t_y) in units of half the image width and height: (N, 2). The
        0.1 slows the localisation net down against the classifier (at the classifier's learning rate an
        unscaled one moves the object off the canvas in the first steps), tanh keeps it within the image."""
        return torch.tanh(0.1 * self.localise(x))

    def align(self, x: torch.Tensor) -> torch.Tensor:
        """x resampled at u + t(x): out(u) = x(u + t), bilinear, black outside."""
        t = self.translation(x)
        eye = torch.eye(2, dtype=x.dtype, device=x.device).expand(len(x), 2, 2)
        grid = F.affine_grid(torch.cat([eye, t[:, :, None]], 2), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.body(self.align(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.align(x))
