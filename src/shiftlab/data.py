"""Datasets as in-memory tensors, padding to a power-of-two frame, and canvas embedding.

Images are float tensors in [0, 1] with shape (N, C, H, W) (C = 1 for Fashion-MNIST, 3 for CIFAR-10);
black is 0 *before* any normalisation (a network normalises its input itself, ``models.Normalize``),
so zero padding, black canvases and zero-filled shifts are all the same black.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .results import atomic_write_bytes
from .runtime import project_root

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
DATASETS = ("fashion_mnist", "cifar10")
# channels, and the per-channel mean and standard deviation of the training images (in [0, 1]) that a
# network trained on the dataset subtracts and divides by; None: the images are used as they are
CHANNELS = {"fashion_mnist": 1, "cifar10": 3}
SPLIT_SIZES = {"fashion_mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}
NORMALISATION = {"fashion_mnist": None, "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                 "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}    # torchvision's pretrained networks
POSITIONS = ("center", "gauss", "uniform")


class DatasetError(RuntimeError):
    """A dataset is missing or unreadable; the message says how to get it."""


@dataclass(frozen=True)
class Split:
    """One split of a dataset held in memory: uint8 images (N, H, W) or (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A fixed random subset of n items (the whole split when n is None or >= len)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        idx = idx.sort().values
        return Split(self.images[idx], self.labels[idx], self.classes)

    def shuffled(self, seed: int = 0) -> Split:
        """The same items in a random order drawn with seed, so that its first n items are a random sample of it."""
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return Split(self.images[idx], self.labels[idx], self.classes)

    def as_float(self, size: int | None = None) -> torch.Tensor:
        """Images as float (N, C, H, W) in [0, 1], zero-padded to size x size when given."""
        x = (self.images.unsqueeze(1) if self.images.ndim == 3 else self.images).float().div_(255.0)
        return x if size is None else pad_to(x, size)


def data_root() -> Path:
    """The torchvision dataset root: $SHIFTLAB_DATA, else data/ in the project root."""
    return Path(os.environ.get("SHIFTLAB_DATA") or project_root() / "data").resolve()


def _raw_dir(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def _install_from_debian(raw: Path) -> bool:
    """Decompress Debian's dataset-fashion-mnist files into the torchvision raw folder."""
    source = DEBIAN_FASHION_MNIST
    if not all((source / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        target = raw / name
        if target.is_file():
            continue
        with gzip.open(source / f"{name}.gz", "rb") as src:
            atomic_write_bytes(target, src.read())
    return True


def _missing_message(root: Path) -> str:
    return (
        f"Fashion-MNIST not found under {_raw_dir(root)} (the torchvision root is $SHIFTLAB_DATA, "
        f"default ./data) nor in {DEBIAN_FASHION_MNIST}, and torchvision could not download it. "
        "Get it one of two ways: `sudo apt-get install dataset-fashion-mnist` (Debian), or run once "
        "with network access so torchvision can download it into the torchvision root."
    )


def prepare_fashion_mnist(root: Path | None = None, download: bool = True) -> Path:
    """Make sure the torchvision raw files exist: torchvision root, then Debian's package, then download."""
    root = data_root() if root is None else Path(root)
    raw = _raw_dir(root)
    if all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        return root
    if _install_from_debian(raw):
        return root
    if download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(root), train=True, download=True)
            FashionMNIST(str(root), train=False, download=True)
            return root
        except Exception as err:  # network errors come in many types
            raise DatasetError(_missing_message(root)) from err
    raise DatasetError(_missing_message(root))


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (magic 0x0000080D, D dims as big-endian int32, then the data) as a uint8 tensor."""
    blob = Path(path).read_bytes()
    if len(blob) < 4 or blob[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = blob[3]
    shape = tuple(int.from_bytes(blob[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = blob[4 + 4 * ndim:]
    if len(body) != math.prod(shape):
        raise ValueError(f"{path} holds {len(body)} bytes of data, its header says {shape}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def load_fashion_mnist(split: str = "train", root: Path | None = None) -> Split:
    """Fashion-MNIST train (60k) or test (10k) as uint8 tensors, read from the torchvision raw IDX files."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is invalid; valid: 'train', 'test'")
    raw = _raw_dir(prepare_fashion_mnist(root))
    prefix = "train" if split == "train" else "t10k"
    try:
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte")
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte").long()
    except (OSError, ValueError) as err:
        raise DatasetError(f"Fashion-MNIST files under {raw} could not be read ({err}); "
                           "delete that folder and run again to re-create it.") from err
    expected = SPLIT_SIZES["fashion_mnist"][split]
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise DatasetError(
            f"Fashion-MNIST {split} under {raw} has shape {tuple(images.shape)}, "
            f"expected ({expected}, 28, 28); delete that folder and run again to re-create it."
        )
    return Split(images, labels, FASHION_MNIST_CLASSES)


def _cifar10_message(folder: Path) -> str:
    return (f"CIFAR-10 not found under {folder} (the torchvision root is $SHIFTLAB_DATA, default ./data), and "
            "torchvision could not download it: run once with network access, or put the python version "
            "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) unpacked there.")


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled CIFAR batch ({b'data': N x 3072 uint8, rows R, G, B planes of 32 x 32; b'labels'}) as
    uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        pixels, labels = batch[b"data"], batch[b"labels"]
        images = torch.as_tensor(pixels, dtype=torch.uint8).reshape(-1, 3, 32, 32)
    except Exception as err:
        raise DatasetError(f"{path} is not a readable CIFAR batch ({type(err).__name__}: {err}); delete "
                           f"{path.parent} and run again to download it afresh.") from err
    labels = torch.as_tensor(labels, dtype=torch.long)
    if len(labels) != len(images):
        raise DatasetError(f"{path} has {len(images)} images but {len(labels)} labels; delete {path.parent} "
                           "and run again to download it afresh.")
    return images, labels


def prepare_cifar10(root: Path | None = None, download: bool = True) -> Path:
    """The folder of CIFAR-10's pickled batches under the torchvision root, downloaded by torchvision if missing."""
    root = data_root() if root is None else Path(root)
    folder = root / CIFAR10_FOLDER
    if all((folder / name).is_file() for names in CIFAR10_BATCHES.values() for name in names):
        return folder
    if download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=True, download=True)
            return folder
        except Exception as err:  # network errors come in many types
            raise DatasetError(_cifar10_message(folder)) from err
    raise DatasetError(_cifar10_message(folder))


def load_cifar10(split: str = "train", root: Path | None = None) -> Split:
    """CIFAR-10 train (50k) or test (10k) as uint8 (N, 3, 32, 32) tensors, read from the pickled batches."""
    if split not in CIFAR10_BATCHES:
        raise ValueError(f"split={split!r} is invalid; valid: 'train', 'test'")
    folder = prepare_cifar10(root)
    parts = [read_cifar_batch(folder / name) for name in CIFAR10_BATCHES[split]]
    return Split(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), CIFAR10_CLASSES)


def load(dataset: str, split: str, root: Path | None = None) -> Split:
    """Load a named dataset split (valid names: DATASETS)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset={dataset!r} is invalid; valid: {', '.join(DATASETS)}")
    return load_cifar10(split, root) if dataset == "cifar10" else load_fashion_mnist(split, root)


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (N, C, h, w) images symmetrically to size x size (28 -> 32 adds 2 px per side)."""
    h, w = x.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}: size must be >= {max(h, w)}")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, h, w) images to size x size (antialiased bilinear), clamped to [0, 1]."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp_(0.0, 1.0)


def embed(x: torch.Tensor, canvas: int, ys: torch.Tensor, xs: torch.Tensor,
          background: float = 0.0) -> torch.Tensor:
    """Place object n (N, C, s, s) with its top-left corner at (ys[n], xs[n]) on a canvas x canvas background."""
    n, c, s, _ = x.shape
    ys, xs = torch.as_tensor(ys).long().expand(n), torch.as_tensor(xs).long().expand(n)
    if ys.min() < 0 or xs.min() < 0 or ys.max() > canvas - s or xs.max() > canvas - s:
        raise ValueError(f"positions must lie in 0..{canvas - s} for {s}px objects on a {canvas}px canvas")
    out = x.new_full((n, c, canvas, canvas), background)
    rows = (ys[:, None] + torch.arange(s))[:, None, :, None].expand(n, c, s, s)
    cols = (xs[:, None] + torch.arange(s))[:, None, None, :].expand(n, c, s, s)
    batch = torch.arange(n)[:, None, None, None].expand(n, c, s, s)
    chan = torch.arange(c)[None, :, None, None].expand(n, c, s, s)
    out[batch, chan, rows, cols] = x
    return out


FRAMES = ("black", "mosaic")     # what surrounds a 28-px item in a network's input frame


def mosaic_frames(items: torch.Tensor, side: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Each item (N, C, s, s) in the centre of a side x side frame cut from the 3 x 3 mosaic of items around it: the
    8 neighbours of item i are items i+1..i+8 (mod N), row-major around it (``mosaic``). A window moving over the
    frame sees new content enter at its edges, as a crop of a natural image does (Zhang 2019's random crops), not the
    black the padded frame shows. With `labels` (N,), the neighbours are the next items of item i's own class (mod
    that class's count), so what enters the window is of the item's class. side <= 3s."""
    s = items.shape[-1]
    if not s <= side <= 3 * s or (side - s) % 2:
        raise ValueError(f"side={side} is invalid for {s}-px items; valid: {s}..{3 * s}, of the parity of {s}")
    if labels is not None:
        if labels.shape != (len(items),):
            raise ValueError(f"labels of shape {tuple(labels.shape)} are invalid for {len(items)} items; valid: "
                             f"({len(items)},)")
        out = items.new_zeros((len(items), items.shape[1], side, side))
        for c in labels.unique():
            idx = (labels == c).nonzero().squeeze(1)
            out[idx] = mosaic_frames(items[idx], side)
        return out
    cut = (3 * s - side) // 2
    return torch.cat([mosaic(items[i:i + 4096], items, i)[..., cut:cut + side, cut:cut + side]
                      for i in range(0, len(items), 4096)]) if len(items) else items.new_zeros(
        (0, items.shape[1], side, side))


def mosaic(chunk: torch.Tensor, items: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
    """Items chunk = items[start:start + n] (N, C, s, s), each at the centre of a 3 x 3 mosaic: (N, C, 3s, 3s); the 8
    neighbours of item i are items i+1..i+8 (mod len(items)), row-major around it, so a moving window always sees real
    content."""
    items = chunk if items is None else items
    index = torch.arange(start, start + len(chunk))
    tiles = [items[(index + o) % len(items)] for o in (1, 2, 3, 4, 0, 5, 6, 7, 8)]    # row-major; 0 is the centre
    return torch.cat([torch.cat(tiles[r * 3:r * 3 + 3], -1) for r in range(3)], -2)


@dataclass(frozen=True)
class Canvas:
    """Objects resized to a side in [min_size, max_size] px and placed on a black size x size canvas,
    at the centre, at the centre plus rounded Gaussian jitter (sigma px), or uniformly anywhere."""

    size: int = 64
    min_size: int = 28
    max_size: int = 28
    position: str = "uniform"
    sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position={self.position!r} is invalid; valid: {', '.join(POSITIONS)}")
        if not 1 <= self.min_size <= self.max_size <= self.size:
            raise ValueError(f"object sizes {self.min_size}..{self.max_size} must satisfy "
                             f"1 <= min <= max <= {self.size}")


def sample_positions(n: int, canvas: int, size: int, mode: str, sigma: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (ys, xs) of n objects of side `size`: centred, Gaussian around the centre, or uniform."""
    top = canvas - size
    if mode == "uniform":
        return (torch.randint(0, top + 1, (n,), generator=generator),
                torch.randint(0, top + 1, (n,), generator=generator))
    centre = torch.full((n,), top // 2)
    if mode == "center":
        return centre, centre.clone()
    jitter = (torch.randn(2, n, generator=generator) * sigma).round().long()
    return (centre + jitter[0]).clamp(0, top), (centre + jitter[1]).clamp(0, top)


def place_on_canvas(objects: torch.Tensor, canvas: Canvas, generator: torch.Generator) -> torch.Tensor:
    """Resize each (N, C, h, w) object to a random side in [min_size, max_size] and place it on the canvas."""
    n = len(objects)
    sizes = torch.randint(canvas.min_size, canvas.max_size + 1, (n,), generator=generator)
    out = objects.new_zeros((n, objects.shape[1], canvas.size, canvas.size))
    for s in sizes.unique().tolist():
        idx = (sizes == s).nonzero().squeeze(1)
        ys, xs = sample_positions(len(idx), canvas.size, s, canvas.position, canvas.sigma, generator)
        out[idx] = embed(resize(objects[idx], s), canvas.size, ys, xs)
    return out


def object_statistics(images: torch.Tensor, threshold: int = 25) -> dict[str, torch.Tensor]:
    """Per uint8 image (N, H, W): intensity centroid (row, col), and the bounding box of the pixels above
    `threshold` (its first row and column, top and left, and its height and width), in px: where the photographer
    put the object, and how big. An image with no pixel above the threshold has top = left = 0, height = width = 0."""
    x = images.float()
    mass = x.sum((1, 2)).clamp_min(1e-9)
    rows, cols = torch.arange(x.shape[1], dtype=torch.float32), torch.arange(x.shape[2], dtype=torch.float32)
    on = images > threshold
    any_row, any_col = on.any(2), on.any(1)

    def extent(mask: torch.Tensor) -> torch.Tensor:
        first = mask.float().argmax(1)
        last = mask.shape[1] - 1 - mask.flip(1).float().argmax(1)
        return torch.where(mask.any(1), last - first + 1, torch.zeros_like(first)).float()

    return {"centroid_row": (x.sum(2) * rows).sum(1) / mass, "centroid_col": (x.sum(1) * cols).sum(1) / mass,
            "top": any_row.float().argmax(1).float(), "left": any_col.float().argmax(1).float(),
            "height": extent(any_row), "width": extent(any_col)}
