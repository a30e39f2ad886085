"""Named model configurations shared by the chapters, trained once and then loaded from a cache.

A cached model lives at ``<cache_dir>/<name>-<key>.pt`` where key is the SHA-256 of the full
configuration (architecture, training, data, library version). The file stores the weights as
bytes together with their SHA-256, is written to a temporary file and renamed, and is retrained
(with a warning) when it is truncated, corrupt, or was written for another configuration.

Training runs one CPU thread per model, so a model's weights do not depend on how many cores the
machine has, and ``ensure`` trains the missing models of a chapter side by side, one worker process
per core: small convolutions use one core far better than two. Several processes asking for the same
model (two notebooks run side by side) train it once: training holds a lock on
``<cache_dir>/locks/<name>-<key>.lock`` and checks the cache again once it holds it.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm import tqdm

from . import __version__, fast, shifts
from .data import CHANNELS, FRAMES, NORMALISATION, Canvas, Split, load, mosaic_frames, place_on_canvas
from .models import RESIDUAL_ARCHS, ModelConfig, VGGLike, build
from .results import atomic_write_bytes
from .runtime import cpu_budget, large_pages_in_new_processes, report, seed_everything, training_precision
from .train import TrainConfig, train


@dataclass(frozen=True)
class Entry:
    """A zoo entry: an architecture and how it is trained (size and seed come from the profile)."""

    model: ModelConfig
    augment: str = "none"
    max_shift: int = 4
    description: str = ""
    canvas: Canvas | None = None
    max_train: int | None = None
    image_size: int | None = None      # frame the 28-px items are padded to (default: the profile's, 32)
    # what surrounds an item in its frame: black padding, or its neighbours in a mosaic (data.mosaic_frames; the
    # network sees a window of image_size over a frame max_shift px wider on every side)
    frame: str = "black"
    # training precision on a GPU: bfloat16 autocast (blur layers in float32); every CPU trains in float32
    # (runtime.training_precision)
    precision: str = "bf16"


VGG_MAX = ModelConfig(downsample="max", padding="circular")
RESNET = ModelConfig(arch="resnet", downsample="strided", padding="circular")


ROTATION_TRAIN = 30000    # Part IV's rotation networks: at most this many training images


def _registry() -> dict[str, Entry]:
    """baseline (MaxPool = MaxBlurPool with filter 1), maxblur2..maxblur7, each also with an _aug twin
    and a zero-padded (_zeros, Zhang's setting) twin; the ResNet-like; the APS networks of Part III. All see 32-px
    windows of mosaic frames (each item amid its neighbours, ``data.mosaic_frames``): the centred window, or for the
    _aug twins a random one (Zhang's random crop over content)."""
    entries = {}
    mosaic = "32-px windows over mosaic frames"
    for m in range(1, 8):
        name = "baseline" if m == 1 else f"maxblur{m}"
        model = VGG_MAX if m == 1 else replace(VGG_MAX, downsample="maxblur", filt_size=m)
        what = "MaxPool" if m == 1 else f"MaxBlurPool (binomial filter {m})"
        entries[name] = Entry(model, frame="mosaic",
                              description=f"{what}, circular padding, widths 16-32-64, centred {mosaic}")
        entries[f"{name}_aug"] = Entry(model, augment="window", frame="mosaic",
                                       description=f"{what}, trained on random {mosaic} (content moved up to 4 px)")
        entries[f"{name}_zeros"] = Entry(replace(model, padding="zeros"), frame="mosaic",
                                         description=f"{what}, zero padding, widths 16-32-64, centred {mosaic}")
    entries["resnet"] = Entry(RESNET, frame="mosaic",
                              description=f"ResNet-like, 3 strided residual stages, circular padding, centred {mosaic}")
    aps = replace(VGG_MAX, downsample="maxaps")
    entries["aps"] = Entry(aps, frame="mosaic", description="MaxPool's subsampling replaced by adaptive polyphase "
                                                            f"sampling, circular padding, centred {mosaic}")
    entries["aps_lpf3"] = Entry(replace(aps, filt_size=3), frame="mosaic",
                                description=f"dense max, Tri-3 blur, then APS (APS-LPF), circular padding, centred "
                                            f"{mosaic}")
    entries["aps_zeros"] = Entry(replace(aps, padding="zeros"), frame="mosaic",
                                 description=f"dense max then APS, zero padding, centred {mosaic}")
    # the paper profile's CIFAR-10 ResNet-18 (64-128-256-512 at its width_factor 4) with the follow-up papers' three
    # subsamplings, beside their published CIFAR-10 table (RESNET18_TABLE)
    resnet18 = ModelConfig(arch="resnet18", downsample="strided", padding="circular", widths=(16, 32, 64, 128))
    entries["resnet18"] = Entry(resnet18, description="ResNet-18, strided convolutions, circular padding")
    entries["resnet18_blur3"] = Entry(replace(resnet18, downsample="convblur", filt_size=3),
                                      description="ResNet-18, Tri-3 blur before every subsampling (Zhang), "
                                                  "circular padding")
    entries["resnet18_aps"] = Entry(replace(resnet18, downsample="convaps"),
                                    description="ResNet-18, APS in place of every subsampling (Chaman & Dokmanić), "
                                                "circular padding")
    # Part IV, rotations: a C8-equivariant network and its control, the same layers for the trivial group C1 (the same
    # filter basis, untied, as many channels), each trained upright and with random rotations (33 px frames: odd, so
    # rotations by 90° keep every sampling grid)
    steerable = {"c8": (ModelConfig(arch="c8", downsample="avg", padding="zeros", widths=(2, 4, 8)),
                        "C8-equivariant steerable CNN (e2cnn), 2-4-8 regular fields (16-32-64 channels)"),
                 "c1": (ModelConfig(arch="c1", downsample="avg", padding="zeros", widths=(16, 32, 64)),
                        "the C8 network's layers for the trivial group C1: 16-32-64 channels of 5x5 filters "
                        "from the same basis, untied")}
    for name, (model, what) in steerable.items():
        # float32 on a GPU too: e2cnn's basis expansion runs slower under bfloat16
        entries[name] = Entry(model, image_size=33, precision="fp32", max_train=ROTATION_TRAIN,
                              description=f"{what}, upright training")
        entries[f"{name}_rot"] = Entry(model, image_size=33, precision="fp32", augment="rotate",
                                       max_train=ROTATION_TRAIN, description=f"{what}, trained with random rotations")
    entries.update(_canvas_registry())
    return entries


CANVAS = 48            # the side of Part I's black canvas (px)
CANVAS_TRAIN = 20000


def _canvas_registry() -> dict[str, Entry]:
    """Part I: networks trained on objects placed on a CANVAS x CANVAS black canvas (at most CANVAS_TRAIN training
    images; how far their 4 epochs are from 8, per seed: book/convergence.md)."""
    vgg = VGG_MAX
    vgg_fc = replace(VGG_MAX, padding="zeros", fc_input=CANVAS)
    anywhere = Canvas(CANVAS, 14, 28, "uniform")
    entries = {
        "canvas_vgg": Entry(vgg, canvas=anywhere, description="VGG-like, objects of 14-28 px anywhere"),
        "canvas_resnet": Entry(RESNET, canvas=anywhere, description="ResNet-like, objects of 14-28 px anywhere"),
        # photographer's bias: a fully connected head on the flattened map, as in VGG16 (zero padding)
        "canvas_center": Entry(vgg_fc, canvas=Canvas(CANVAS, 14, 28, "center"),
                               description="VGG-like with a fully connected head, objects centred"),
        "canvas_gauss": Entry(vgg_fc, canvas=Canvas(CANVAS, 14, 28, "gauss", 3.0),
                              description="VGG-like with a fully connected head, objects centred with Gaussian jitter "
                                          "(sigma 3 px)"),
        "canvas_uniform_fc": Entry(vgg_fc, canvas=anywhere,
                                   description="VGG-like with a fully connected head, objects of 14-28 px anywhere"),
        "canvas_fixed_size": Entry(vgg, canvas=Canvas(CANVAS, 28, 28, "uniform"),
                                   description="VGG-like, objects of 28 px only, anywhere"),
        # Part III, padding: canvas_vgg with zero or reflect padding instead of circular
        "canvas_vgg_zeros": Entry(replace(vgg, padding="zeros"), canvas=anywhere,
                                  description="VGG-like, zero padding, objects of 14-28 px anywhere"),
        "canvas_vgg_reflect": Entry(replace(vgg, padding="reflect"), canvas=anywhere,
                                    description="VGG-like, reflect padding, objects of 14-28 px anywhere"),
        # Part I, chapter 3's control for the head: canvas_gauss with global pooling instead of the fully connected
        # head (zero padding, as the fully connected nets)
        "canvas_gauss_gap": Entry(replace(vgg, padding="zeros"), canvas=Canvas(CANVAS, 14, 28, "gauss", 3.0),
                                  description="VGG-like, global pooling, zero padding, objects centred with Gaussian "
                                              "jitter (sigma 3 px)"),
        # Part IV, learned alignment: global pooling + zero padding (position-aware, as most CNNs), objects anywhere
        # (so a transformer has something to align): canvas_vgg_zeros (chapter 11) is the plain network, and the
        # same network anti-aliased and behind a spatial transformer
        "canvas_zeros_aa": Entry(replace(vgg, padding="zeros", downsample="maxblur", filt_size=5), canvas=anywhere,
                                 description="MaxBlurPool-5 VGG-like, zero padding, objects of 14-28 px anywhere"),
        "canvas_uniform_stn": Entry(replace(vgg, padding="zeros", arch="stn"), canvas=anywhere,
                                    description="spatial transformer (translation) + VGG-like, zero padding, "
                                                "objects of 14-28 px anywhere"),
        # Part IV, sliding windows: no padding, so a dense pass equals the window loop exactly
        "canvas_vgg_valid": Entry(replace(vgg, padding="valid"), canvas=anywhere,
                                  description="VGG-like without padding ('valid' convolutions), "
                                              "objects of 14-28 px anywhere"),
    }
    # Part I, chapter 2: four stages of equal depth and widths; only the first k subsample: S = 2**k is the one change
    for k in range(1, 5):
        entries[f"canvas_stride{2 ** k}"] = Entry(
            replace(VGG_MAX, widths=(16, 32, 32, 32), subsampling_stages=k), canvas=anywhere,
            description=f"VGG-like, four conv stages (16-32-32-32), the first {k} subsampling (S = {2 ** k}), "
                        "objects anywhere")
    return {name: replace(e, max_train=CANVAS_TRAIN) for name, e in entries.items()}


ENTRIES: dict[str, Entry] = _registry()
# chapter 9's rows of the follow-up papers' CIFAR-10 table (the paper profile trains each resnet18_seeds times)
RESNET18_TABLE = {"Baseline": "resnet18", "BlurPool": "resnet18_blur3", "APS": "resnet18_aps"}


def antialiased(filt_size: int, augment: bool = False, padding: str = "circular") -> str:
    """The zoo name of the VGG with MaxBlurPool filter m (m = 1 is the MaxPool baseline), trained with
    shifts or not, with circular or (not augmented) zero padding."""
    if padding not in ("circular", "zeros") or (augment and padding == "zeros"):
        raise ValueError(f"antialiased(augment={augment}, padding={padding!r}) is not in the zoo; valid: "
                         "padding 'circular' with or without augmentation, or 'zeros' without")
    name = "baseline" if filt_size == 1 else f"maxblur{filt_size}"
    return f"{name}_aug" if augment else f"{name}_zeros" if padding == "zeros" else name


def canvas_stages(stages: int) -> str:
    """The zoo name of chapter 2's canvas VGG whose first `stages` of four equal stages subsample (S = 2**stages)."""
    if stages not in range(1, 5):
        raise ValueError(f"stages={stages} is invalid; valid: 1..4")
    return f"canvas_stride{2 ** stages}"


class CacheError(RuntimeError):
    """A cache file is unreadable, corrupt, or belongs to another configuration."""


USE_EVENT = "use"    # the events-log line of every model a chapter uses (not shown live; scripts/paper_estimate.py)
TRAIN_EVENT = "train"   # the events-log lines of a model being trained (shown live; a chapter that trains runs cold)
# not the steerable pair: C8's widths count regular fields of 8 channels each, and C1 keeps as many channels
SCALABLE_ARCHS = ("vgg", "resnet", "resnet18", "stn")


def adapted(model: ModelConfig, dataset: str = "fashion_mnist", width_factor: int = 1,
            convs_per_stage: int = 1) -> ModelConfig:
    """An entry's architecture for a dataset (its channels, and its normalisation as the first layer) and a
    profile's scale (every width times width_factor, convs_per_stage 3x3 convolutions per stage of the
    VGG-likes); unchanged for Fashion-MNIST at scale 1."""
    changes: dict = {"in_channels": CHANNELS[dataset]}
    if NORMALISATION[dataset] is not None and model.arch in ("vgg", *RESIDUAL_ARCHS):
        changes["normalize"] = dataset
    if model.arch in SCALABLE_ARCHS:
        changes["widths"] = tuple(w * width_factor for w in model.widths)
        if model.arch not in RESIDUAL_ARCHS:
            changes["convs_per_stage"] = model.convs_per_stage * convs_per_stage
    return replace(model, **changes)


def full_config(name: str, n_train: int, epochs: int, seed: int, dataset: str = "fashion_mnist",
                image_size: int = 32, batch_size: int = 128, width_factor: int = 1, convs_per_stage: int = 1,
                device: torch.device | str = "cpu") -> dict:
    """Everything that determines a trained zoo model, as a JSON-able dict (the entry's bfloat16 training becomes
    float32 on a CPU: ``runtime.training_precision``)."""
    if name not in ENTRIES:
        raise KeyError(f"zoo entry {name!r} is unknown; valid: {', '.join(ENTRIES)}")
    e = ENTRIES[name]
    if e.frame not in FRAMES:
        raise ValueError(f"zoo entry {name!r} has frame={e.frame!r}; valid: {', '.join(FRAMES)}")
    size = e.canvas.size if e.canvas else e.image_size or image_size
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, augment=e.augment, max_shift=e.max_shift, seed=seed,
                       canvas=e.canvas, precision=training_precision(e.precision, device),
                       window=size if e.frame == "mosaic" else 0)
    model = adapted(e.model, dataset, width_factor, convs_per_stage)
    frame = {} if e.frame == "black" else {"frame": e.frame}
    return {"name": name, "model": model.to_dict(), "train": tcfg.to_dict(),
            "data": {"dataset": dataset, "n_train": min(n_train, e.max_train or n_train), "image_size": size, **frame},
            "version": __version__}


def training_inputs(config: dict, split: Split) -> torch.Tensor:
    """The images of split as the model of a full configuration trains on them: padded to its frame; its mosaic
    frames, max_shift px wider than its window on every side (``data.mosaic_frames``); or as they are (a canvas run
    places them per batch)."""
    tcfg, size = train_config(config), config["data"]["image_size"]
    if tcfg.canvas is not None:
        return split.as_float()
    if config["data"].get("frame", "black") == "mosaic":
        return mosaic_frames(split.as_float(), size + 2 * tcfg.max_shift)
    return split.as_float(size)


def test_inputs(config: dict, split: Split) -> torch.Tensor:
    """The images of split as the model of a full configuration was trained to see them, unmoved: padded to its
    frame; the centred window of their mosaic frames; or placed on its canvas (drawn with the model's seed)."""
    tcfg = train_config(config)
    if tcfg.canvas is not None:
        return place_on_canvas(split.as_float(), tcfg.canvas, torch.Generator().manual_seed(tcfg.seed))
    x = training_inputs(config, split)
    return shifts.window(x, 0, 0, size=tcfg.window) if tcfg.window else x


def train_config(config: dict) -> TrainConfig:
    """The TrainConfig stored in a full configuration."""
    fields = dict(config["train"])
    if fields.get("canvas") is not None:
        fields["canvas"] = Canvas(**fields["canvas"])
    return TrainConfig(**fields)


def cache_key(config: dict) -> str:
    """SHA-256 of the canonical JSON of a full configuration (first 16 hex digits)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, model: VGGLike, config: dict, history: list[dict]) -> None:
    """Store weights (as bytes, with their SHA-256), config and history atomically. The weights are saved as a plain
    dict of tensors (without the state dict's per-module metadata), so their SHA-256 names the tensors alone, not the
    module structure that holds them."""
    buf = io.BytesIO()
    torch.save(dict(model.state_dict()), buf)
    weights = buf.getvalue()
    out = io.BytesIO()
    torch.save({"config": config, "history": history, "weights": weights,
                "sha256": hashlib.sha256(weights).hexdigest()}, out)
    atomic_write_bytes(path, out.getvalue())


class Checkpoint(NamedTuple):
    """A cached model (in eval mode, accelerated: ``shiftlab.fast``), its training history, and the SHA-256 of its
    weights."""

    model: VGGLike
    history: list[dict]
    sha256: str


def load_checkpoint(path: Path, config: dict) -> Checkpoint:
    """Load a checkpoint, checking it is whole, uncorrupted and made for exactly this config."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        weights, digest = blob["weights"], blob["sha256"]
    except Exception as err:
        raise CacheError(f"{path} is unreadable or truncated ({type(err).__name__}: {err})") from err
    if hashlib.sha256(weights).hexdigest() != digest:
        raise CacheError(f"{path} is corrupt: its weights do not match their SHA-256")
    if cache_key(blob["config"]) != cache_key(config):    # canonical JSON: a plan's lists equal the zoo's tuples
        raise CacheError(f"{path} was written for another configuration or library version")
    model = build(ModelConfig(**config["model"]))
    model.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True))
    return Checkpoint(fast.accelerate(model).eval(), blob["history"], digest)


def model_path(cache_dir: str | Path, config: dict) -> Path:
    """Where the model of a full configuration is cached."""
    return Path(cache_dir) / f"{config['name']}-{cache_key(config)}.pt"


def _cached(path: Path, config: dict) -> Checkpoint | None:
    """The cached checkpoint, or None (with a warning when a file exists but is unusable)."""
    if not path.exists():
        return None
    try:
        return load_checkpoint(path, config)
    except CacheError as err:
        warnings.warn(f"retraining {config['name']}: {err}", stacklevel=3)
        return None


def _cached_quietly(path: Path, config: dict) -> bool:
    """Whether a usable model of this configuration is cached at path, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return path.exists() and _cached(path, config) is not None


class LockBusy(Exception):
    """Another process is training this model right now."""


@contextmanager
def _training_lock(path: Path, wait: bool = True):
    """Hold an exclusive lock on the model at path (released when the process ends, even on a crash);
    with wait=False raise LockBusy at once when another process holds it."""
    lock = path.parent / "locks" / f"{path.stem}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise LockBusy(str(path)) from err
        yield


def _train_to_cache(config: dict, path: str, device: str = "cpu", progress: bool = False,
                    wait: bool = True) -> float | None:
    """Train the model of a full configuration on one CPU thread and cache it, unless another process
    cached it while this one waited for the lock; returns training seconds (0 when it was not trained), or
    None when wait=False and another process is training it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _training_lock(Path(path), wait):
            if _cached_quietly(Path(path), config):   # the caller has warned about a damaged file already
                return 0.0
            tcfg = train_config(config)
            split = load(config["data"]["dataset"], "train").subset(config["data"]["n_train"], tcfg.seed)
            x = training_inputs(config, split)
            seed_everything(tcfg.seed)
            model = fast.accelerate(build(ModelConfig(**config["model"])))
            label = f"{config['name']} seed {tcfg.seed}"
            report(f"{TRAIN_EVENT} {label}: {tcfg.epochs} epochs x {len(x)} images")
            history = train(model, x, split.labels, tcfg, device=device, progress=progress, desc=label,
                            on_epoch=lambda h: report(f"{TRAIN_EVENT} {label}: epoch {h['epoch']}/{tcfg.epochs} "
                                                      f"in {h['seconds']:.0f} s, train acc {h['train_acc']:.3f}"))
            save_checkpoint(Path(path), model.cpu(), config, history)
            return sum(h["seconds"] for h in history)
    except LockBusy:
        return None
    finally:
        torch.set_num_threads(threads)


def flops_per_image(config: dict) -> float:
    """Forward + backward FLOPs of one image through the network of a full configuration (torch's FlopCounterMode)."""
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    net = build(ModelConfig(**config["model"]))
    size = config["data"]["image_size"]
    x = torch.rand(2, config["model"]["in_channels"], size, size)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(net(x), torch.zeros(2, dtype=torch.long)).backward()
    return counter.get_total_flops() / 2


def is_cached(config: dict, cache_dir: str | Path) -> bool:
    """Whether the model of a full configuration is in the cache, readable and of that configuration."""
    return _cached_quietly(model_path(cache_dir, config), config)


def train_into_cache(config: dict, cache_dir: str | Path, device: str = "cpu") -> float:
    """Train the model of a full configuration (from a plan) into the cache, unless it is there or another process
    put it there while this one waited for its lock; returns the training seconds (0 when it did not train)."""
    return _train_to_cache(config, str(model_path(cache_dir, config)), device, progress=False, wait=True)


def ensure(requests: list[tuple[str, int]], *, n_train: int, epochs: int, cache_dir: str | Path = "results/cache",
           device: torch.device | str = "cpu", workers: int | None = None, progress: bool = True, **scale) -> int:
    """Train every (name, seed) of requests that is not cached yet, `workers` at a time (default: one per
    core this process may use; on a GPU one after the other); returns how many were trained. ``scale``:
    dataset, width_factor, convs_per_stage (``full_config``)."""
    configs = [full_config(name, n_train, epochs, seed, device=device, **scale)
               for name, seed in dict.fromkeys(requests)]
    return train_missing(configs, cache_dir, device, workers, progress)


def train_missing(configs: list[dict], cache_dir: str | Path, device: torch.device | str = "cpu",
                  workers: int | None = None, progress: bool = True) -> int:
    """Train every full configuration of configs that is not cached yet, in the order given, `workers` at a time
    (``ensure``); returns how many were trained."""
    missing = [c for c in configs if _cached(model_path(cache_dir, c), c) is None]
    if not missing:
        return 0
    workers = min(len(missing), workers or cpu_budget())
    bar = tqdm(total=len(missing), desc=f"training {len(missing)} model(s) on {workers} worker(s)",
               disable=not progress, mininterval=1.0)
    # First every model no other process is training (skipping the busy ones instead of queueing behind
    # them, so two chapters that need the same list train different models side by side), then wait for the rest.
    busy = _train_all(missing, cache_dir, str(device), workers, progress, bar, wait=False)
    _train_all(busy, cache_dir, str(device), workers, progress, bar, wait=True)
    bar.close()
    return len(missing)


def _train_all(configs: list[dict], cache_dir: str | Path, device: str, workers: int, progress: bool, bar: tqdm,
               wait: bool) -> list[dict]:
    """Train configs, `workers` processes at a time on the CPU (one after the other on a GPU); returns those
    skipped because another process was training them (only when wait=False)."""
    if not configs:
        return []
    busy = []
    if torch.device(device).type != "cpu" or workers == 1:
        for c in configs:
            if _train_to_cache(c, str(model_path(cache_dir, c)), device, progress, wait) is None:
                busy.append(c)
            else:
                bar.update()
        return busy
    with large_pages_in_new_processes(), \
            ProcessPoolExecutor(min(workers, len(configs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = {pool.submit(_train_to_cache, c, str(model_path(cache_dir, c)), "cpu", False, wait): c for c in configs}
        for job in as_completed(jobs):
            if job.result() is None:
                busy.append(jobs[job])
            else:
                bar.update()
    return busy


def get(name: str, *, n_train: int, epochs: int, seed: int = 0, cache_dir: str | Path = "results/cache",
        device: torch.device | str = "cpu", progress: bool = True, **scale) -> tuple[VGGLike, dict]:
    """The trained zoo model `name` for this size and seed (and ``scale``: dataset, width_factor, convs_per_stage):
    loaded from cache, else trained and cached. Returns (model in eval mode on device, info with config, key,
    history, the weights' SHA-256, cache path and whether it was cached)."""
    config = full_config(name, n_train, epochs, seed, device=device, **scale)
    path = model_path(cache_dir, config)
    report(f"{USE_EVENT} {name} seed {seed}")
    found = _cached(path, config)
    cached = found is not None
    if not cached:
        _train_to_cache(config, str(path), str(device), progress)
        found = load_checkpoint(path, config)
    info = {"config": config, "key": cache_key(config), "history": found.history, "weights": found.sha256,
            "path": str(path), "cached": cached}
    return found.model.to(device, memory_format=torch.channels_last).eval(), info


def profile_scale(cfg) -> dict:
    """The dataset and network scale a chapter's parameters ask for (defaults: Fashion-MNIST, scale 1)."""
    return {"dataset": getattr(cfg, "dataset", "fashion_mnist"), "width_factor": getattr(cfg, "width_factor", 1),
            "convs_per_stage": getattr(cfg, "convs_per_stage", 1)}


def for_chapter(name: str, cfg, device: torch.device | str, seed: int | None = None) -> tuple[VGGLike, dict]:
    """``get`` with the size, seed, scale and cache folder of a chapter's validated parameters (seed overridable)."""
    return get(name, n_train=cfg.n_train, epochs=cfg.epochs, seed=cfg.seed if seed is None else seed,
               cache_dir=cfg.cache_dir, device=device, **profile_scale(cfg))


def planned(cfg, device: torch.device | str, names: list[str], seeds=None) -> list[dict]:
    """What ``prepare`` would train or load, without doing it: per (name, seed), its full configuration, cache key
    and cache directory."""
    seeds = [cfg.seed] if seeds is None else list(seeds)
    out = []
    for name in names:
        for seed in seeds:
            config = full_config(name, cfg.n_train, cfg.epochs, seed, device=device, **profile_scale(cfg))
            out.append({"name": name, "seed": seed, "key": cache_key(config), "config": config,
                        "cache_dir": str(cfg.cache_dir)})
    return out


def prepare(cfg, device: torch.device | str, names: list[str], seeds=None) -> int:
    """Train, side by side, every zoo model a chapter will ask for (names x seeds, default: the chapter's
    seed) that is not cached yet; returns how many were trained."""
    seeds = [cfg.seed] if seeds is None else list(seeds)
    return ensure([(name, seed) for name in names for seed in seeds], n_train=cfg.n_train, epochs=cfg.epochs,
                  cache_dir=cfg.cache_dir, device=device, **profile_scale(cfg))
