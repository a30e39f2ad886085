"""Deterministic training on in-memory tensors with batched shift augmentation.

SGD with Nesterov momentum under a one-cycle schedule: short runs end at a small learning rate,
so models trained for one or two epochs can be compared with each other. With precision 'bf16' the
forward pass runs under bfloat16 autocast (weights, gradients and optimiser state stay float32).
Batches and weights are channels-last (the layout in which oneDNN's convolutions, pooling and depthwise
blur run fastest on a CPU); the model is returned in the default layout.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import shifts as sh
from .data import Canvas, place_on_canvas
from .runtime import autocast

AUGMENTS = ("none", "roll", "crop", "window", "rotate")
TRAIN_PRECISIONS = ("fp32", "bf16")
CHANNELS_LAST = torch.channels_last
WARM_UP = 0.25     # fraction of the one-cycle schedule spent raising the learning rate


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; its dict is part of the model cache key."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    augment: str = "none"
    max_shift: int = 4
    seed: int = 0
    canvas: Canvas | None = None
    precision: str = "fp32"
    window: int = 0     # > 0: the images are frames and the network sees their window of this side (shifts.window)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} is invalid; valid: an integer >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} is invalid; valid: an integer >= 1")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment={self.augment!r} is invalid; valid: {', '.join(AUGMENTS)}")
        if self.canvas is not None and self.augment != "none":
            raise ValueError("a canvas run draws its own positions; use augment='none' with it")
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is invalid; valid: {', '.join(TRAIN_PRECISIONS)}")
        if self.max_shift < 0:
            raise ValueError(f"max_shift={self.max_shift} is invalid; valid: an integer >= 0")
        if self.window < 0:
            raise ValueError(f"window={self.window} is invalid; valid: 0 (no frames) or a window side >= 1")
        if self.augment == "window" and not self.window:
            raise ValueError("augment='window' moves a window over frames; valid with window > 0 (the window side)")
        if self.window and self.canvas is not None:
            raise ValueError("a canvas run has no frames; use window=0 with it")

    def to_dict(self) -> dict:
        """The fields as a dict; `canvas` and `window` only when set and `precision` only when not fp32, so keys of
        earlier caches stay valid."""
        d = asdict(self)
        if not d["window"]:
            del d["window"]
        if d["canvas"] is None:
            del d["canvas"]
        if d["precision"] == "fp32":
            del d["precision"]
        return d


def augment_batch(x: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """Place every object on the canvas when training on one; with a window, cut every frame's window, centred or
    (augment 'window', Zhang's random crop over content) with its content moved by its own offset ~ U{-m..m}^2;
    then rotate every image by its own angle ~ U[0°, 360°) ('rotate'), or shift it by its own offset ~ U{-m..m}^2
    (circular for 'roll', black fill for 'crop')."""
    if cfg.canvas is not None:
        return place_on_canvas(x, cfg.canvas, g)
    if cfg.window:
        moved = cfg.augment == "window" and cfg.max_shift > 0
        x = sh.window(x, *(sh.random_offsets(len(x), cfg.max_shift, g) if moved else (0, 0)), size=cfg.window)
        if cfg.augment == "window":
            return x
    if cfg.augment == "rotate":
        return sh.rotate(x, torch.rand(len(x), generator=g) * 360)
    if cfg.augment == "none" or cfg.max_shift == 0:
        return x
    return sh.shift(x, *sh.random_offsets(len(x), cfg.max_shift, g), cfg.augment)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
          device: torch.device | str = "cpu", progress: bool = True, desc: str = "train",
          on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train model in place on (x, y); returns per-epoch {'epoch', 'loss', 'train_acc', 'seconds'}
    (also passed to on_epoch as each epoch ends)."""
    g = torch.Generator().manual_seed(cfg.seed)
    model.to(device, memory_format=CHANNELS_LAST).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                          weight_decay=cfg.weight_decay)
    steps = -(-len(x) // cfg.batch_size)
    if cfg.epochs * steps * WARM_UP == 1:
        raise ValueError(f"{len(x)} images x {cfg.epochs} epoch(s) at batch {cfg.batch_size} make "
                         f"{cfg.epochs * steps} steps, which leaves the one-cycle schedule's warm-up zero steps long: "
                         "change n_train or epochs")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps,
                                                pct_start=WARM_UP)
    history, dev = [], torch.device(device)
    for epoch in range(cfg.epochs):
        start, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(x), generator=g)
        bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, mininterval=1.0)
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb = augment_batch(x[idx], cfg, g).to(device, memory_format=CHANNELS_LAST)
            yb = y[idx].to(device)
            with autocast(dev, cfg.precision):
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        history.append({"epoch": epoch + 1, "loss": total_loss / len(x), "train_acc": correct / len(x),
                        "seconds": time.perf_counter() - start})
        if on_epoch:
            on_epoch(history[-1])
    model.to(memory_format=torch.contiguous_format).eval()
    return history
