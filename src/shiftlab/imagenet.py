"""ImageNet at paper scale: a validation folder, torchvision's pretrained networks, and the two papers' protocols.

The validation images come from a folder in ImageFolder layout (one sub-folder per class, named by its
WordNet id, e.g. ``n01440764/ILSVRC2012_val_00000293.JPEG``; the sorted sub-folder names give the class
indices, as torchvision's ImageFolder does), resized so the short side is 256 px and centre-cropped to
256 x 256, as float (N, 3, 256, 256) in [0, 1]. Every network takes such images and standardises them
itself (``models.Normalize`` with ImageNet's statistics), so black is 0 in every protocol.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from . import inference, metrics, protocols, shifts
from .data import DatasetError, resize
from .models import Normalize

FRAME, CROP = 256, 224
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# display name: torchvision model name (weights through torchvision's weights API)
PRETRAINED = {"VGG16": "vgg16", "ResNet50": "resnet50", "DenseNet121": "densenet121"}
ANTIALIASED = "ResNet50 (anti-aliased, Tri-4)"     # antialiased-cnns' resnet50, filter 4


class WeightsError(RuntimeError):
    """Pretrained weights could not be loaded (usually: no network); the message says what to do."""


def pretrained(name: str, weights: bool = True) -> nn.Module:
    """A pretrained ImageNet network by display name (PRETRAINED or ANTIALIASED), preceded by ImageNet's
    standardisation, in eval mode; weights=False gives the same architecture with random weights."""
    if name == ANTIALIASED:
        import antialiased_cnns

        build = lambda: antialiased_cnns.resnet50(pretrained=weights, filter_size=4)   # noqa: E731
    elif name in PRETRAINED:
        from torchvision.models import get_model

        build = lambda: get_model(PRETRAINED[name], weights="DEFAULT" if weights else None)   # noqa: E731
    else:
        raise ValueError(f"network {name!r} is unknown; valid: {', '.join([*PRETRAINED, ANTIALIASED])}")
    try:
        net = build()
    except Exception as err:     # download failures come in many types
        raise WeightsError(f"the pretrained weights of {name} could not be loaded ({type(err).__name__}: {err}); "
                           "they download once into torch's hub cache ($TORCH_HOME): "
                           "run once with network access") from err
    return nn.Sequential(Normalize("imagenet"), net).eval()


def image_files(folder: str | Path) -> tuple[list[Path], torch.Tensor, list[str]]:
    """Every image under an ImageFolder-layout folder, its class index (sorted sub-folder order) and the classes."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"imagenet_val={str(folder)!r} is not a folder; valid: the ImageNet validation set in "
                           "ImageFolder layout (one sub-folder per class, e.g. n01440764/*.JPEG)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DatasetError(f"{root} holds no images in class sub-folders (looked for {', '.join(IMAGE_SUFFIXES)} "
                           "files one level down, ImageFolder layout)")
    return [f for f, _ in files], torch.tensor([k for _, k in files]), classes


def load_frame(path: Path, size: int = FRAME) -> torch.Tensor:
    """One image as float (3, size, size) in [0, 1]: short side resized to size (antialiased), centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        w, h = rgb.size
        scale = size / min(w, h)
        rgb = rgb.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR, reducing_gap=None)
    x = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.size[1], rgb.size[0], 3)
    top, left = (x.shape[0] - size) // 2, (x.shape[1] - size) // 2
    return x[top:top + size, left:left + size].permute(2, 0, 1).float().div_(255.0)


def validation_frames(folder: str | Path, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of the validation folder drawn at random (seeded) as (N, 3, 256, 256) frames, with their labels."""
    files, labels, _ = image_files(folder)
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return torch.stack([load_frame(files[i]) for i in pick.tolist()]), labels[pick]


def crop_pair_agreement(model: nn.Module, frames: torch.Tensor, seed: int, batch_size: int = 64) -> torch.Tensor:
    """Zhang's consistency per image: 1[argmax f(Crop_o1 x) == argmax f(Crop_o2 x)], two 224 crops of the 256 frame at
    offsets o1, o2 ~ U{0..31}^2 drawn per image."""
    g = torch.Generator().manual_seed(seed)
    o = torch.randint(0, FRAME - CROP + 1, (4, len(frames)), generator=g)
    agree = []
    for i in range(0, len(frames), batch_size):
        part, sl = frames[i:i + batch_size], slice(i, i + batch_size)
        a = inference.predict_logits(model, shifts.windows(part, o[0, sl], o[1, sl], CROP)).argmax(1)
        b = inference.predict_logits(model, shifts.windows(part, o[2, sl], o[3, sl], CROP)).argmax(1)
        agree.append(a == b)
    return torch.cat(agree)


def crop_diagonal_changes(model: nn.Module, frames: torch.Tensor, pairs: int = 8) -> dict[str, torch.Tensor]:
    """Azulay's Crop protocol per image: 224 windows of the frame at diagonal offsets c and c+1 around its centre,
    P(top-1 change) and MAC averaged over `pairs` consecutive pairs (``protocols.diagonal_pair_changes``)."""
    cs = range(-(pairs // 2), pairs - pairs // 2 + 1)
    return protocols.diagonal_pair_changes({c: inference.predict_probs(model, shifts.window(frames, c, c, CROP))
                                            for c in cs})


def black_diagonal_changes(model: nn.Module, frames: torch.Tensor, side: int,
                           pairs: int = 8) -> dict[str, torch.Tensor]:
    """Azulay's Black protocol per image: the frame shrunk to side x side px on a black 224 canvas at diagonal
    positions c and c+1 around the centre, P(top-1 change) and MAC over `pairs` consecutive pairs."""
    if not 1 <= side <= CROP - pairs - 1:
        raise ValueError(f"side={side} is invalid; valid: 1..{CROP - pairs - 1} px, "
                         f"so {pairs + 1} positions fit the canvas")
    objects, centre = resize(frames, side), (CROP - side) // 2 - pairs // 2
    return protocols.diagonal_pair_changes({
        c: protocols.embedded_probs(model, objects, CROP, side, centre + c, centre + c) for c in range(pairs + 1)})


def azulay_table(frames: torch.Tensor, device: torch.device | str, names: tuple[str, ...] = tuple(PRETRAINED),
                 side: int = 140, weights: bool = True) -> pd.DataFrame:
    """Azulay & Weiss's Table 1 on these frames, one row per network: mean P(top-1 change) and MAC for 1-px
    diagonal moves of a 224 crop and of the image shrunk to `side` px (their 224/1.6) on a black canvas."""
    rows = []
    for name in names:
        net = pretrained(name, weights).to(device)
        crop, black = crop_diagonal_changes(net, frames), black_diagonal_changes(net, frames, side)
        rows.append({"network": name, "P(top-1 change), crop": crop["P(top-1 change)"].mean().item(),
                     "P(top-1 change), black": black["P(top-1 change)"].mean().item(),
                     "MAC, crop": crop["MAC"].mean().item(), "MAC, black": black["MAC"].mean().item()})
    return pd.DataFrame(rows).set_index("network")


def zhang_table(frames: torch.Tensor, labels: torch.Tensor, device: torch.device | str, seed: int,
                names: tuple[str, ...] = (*PRETRAINED, ANTIALIASED), weights: bool = True) -> pd.DataFrame:
    """Zhang's ImageNet columns on these frames, one row per network: top-1 accuracy of the 224 centre crop and
    consistency (two random 224 crops of the 256 frame classified the same), both in %."""
    centre = shifts.window(frames, 0, 0, CROP)
    rows = []
    for name in names:
        net = pretrained(name, weights).to(device)
        rows.append({"network": name, "accuracy": 100 * metrics.accuracy(inference.predict_logits(net, centre), labels),
                     "consistency": 100 * crop_pair_agreement(net, frames, seed).float().mean().item()})
    return pd.DataFrame(rows).set_index("network")
