"""Small datasets in their real on-disk formats, written by the tests (no network, no real data needed)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from shiftlab.data import CIFAR10_BATCHES, CIFAR10_FOLDER


def cifar10_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 32x32 RGB images (N, 3, 32, 32) uint8 with labels: a bright square whose colour and size depend on
    the class on a dark noisy background, so a small network can learn something in one epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 3, 32, 32)).astype(np.uint8)
    for i, y in enumerate(labels):
        side, top, left = 8 + y, rng.integers(0, 24 - y + 1), rng.integers(0, 24 - y + 1)
        images[i, y % 3, top:top + side, left:left + side] = 200 + 5 * y
    return images, labels


def write_cifar10(root: Path, n_per_batch: int = 40) -> Path:
    """CIFAR-10's python version under root/cifar-10-batches-py: five training batches and a test batch,
    pickled dicts with b'data' (N x 3072 uint8: the R, G, B planes row by row) and b'labels'."""
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(CIFAR10_BATCHES["train"] + CIFAR10_BATCHES["test"]):
        images, labels = cifar10_images(n_per_batch, k)
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(),
                 b"data": images.reshape(n_per_batch, -1),
                 b"filenames": [f"{i}.png".encode() for i in range(n_per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder
