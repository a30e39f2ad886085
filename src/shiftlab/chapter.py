"""What every chapter notebook does first: validate parameters, seed, threads, figure style, test data."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch

from . import data, params, plots, runtime


def start(namespace: dict[str, Any]) -> tuple[SimpleNamespace, torch.device]:
    """Validate the notebook's parameters (pass ``globals()``), seed everything, use every core,
    set the figure style; return the parameters and the torch device."""
    cfg = params.collect(namespace)
    runtime.seed_everything(cfg.seed)
    runtime.set_threads()
    runtime.set_precision(getattr(cfg, "precision", "fp32"))
    plots.set_style()
    return cfg, runtime.resolve_device(cfg.device)


def parameter_table(cfg: SimpleNamespace) -> pd.DataFrame:
    """The parameters in effect, without machine-specific paths, for display at the top of a chapter."""
    return pd.Series({k: v for k, v in vars(cfg).items() if not k.endswith("_dir")}, name="value").to_frame()


def load_test_set(cfg: SimpleNamespace, size: int = 32) -> tuple[data.Split, torch.Tensor]:
    """The profile's fixed test subset (n_test items of its dataset, seed) and its images padded to size x size."""
    test = data.load(getattr(cfg, "dataset", "fashion_mnist"), "test").subset(cfg.n_test, cfg.seed)
    return test, test.as_float(size)


def glue(name: str, value: Any) -> None:
    """Record a number or text for the chapter's prose ({glue:text}`name:format`), as a plain Python
    value: NumPy and torch scalars print as np.float64(...) and break the format."""
    from myst_nb import glue as _glue

    if hasattr(value, "item"):
        value = value.item()
    _glue(name, value, display=False)


def verdicts(found: list) -> pd.DataFrame:
    """Glue every finding for the prose (``<key>``: its sentence, ``<key>_verdict``, ``<key>_means``:
    the interpretation for the verdict measured) and return the reader's table of them."""
    from . import findings

    for f in found:
        glue(f.key, f.sentence())
        glue(f"{f.key}_verdict", f.verdict)
        glue(f"{f.key}_means", f.meaning())
    return findings.table(found)


def imagenet_frames(cfg: SimpleNamespace) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The chapter's ImageNet validation frames and labels (n_imagenet images of the imagenet_val folder, drawn
    with the seed), or None, with one line saying how to run the section, when imagenet_val is empty."""
    if not cfg.imagenet_val:
        print("This section runs with an ImageNet validation folder (ImageFolder layout), on a GPU: "
              "make book PROFILE=paper PARAMS=imagenet_val=/path/to/val")
        return None
    from . import imagenet

    return imagenet.validation_frames(cfg.imagenet_val, cfg.n_imagenet, cfg.seed)
