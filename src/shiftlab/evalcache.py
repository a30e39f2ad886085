"""Evaluations cached like models: a measurement of trained models is computed once per
(models, measurement, protocol, library version) and read back on later runs.

A result lives at ``<cache_dir>/eval/<measurement>-<key>.pt``, key = SHA-256 of the canonical JSON of
the models' cache keys with their weights' SHA-256 (so a model file replaced by other weights under the
same configuration, say copied from another machine, is measured again), the measurement's name, its
protocol (shift kind, offsets, data slice, seed, ...) and the library version. Results are tensors,
numbers, strings, and lists or dicts of them (what ``torch.load(weights_only=True)`` reads back); they are
written to a temporary file and renamed, and an unreadable or foreign file is recomputed with a warning.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .results import atomic_write_bytes
from .runtime import precision, report

EVAL_EVENT = "evaluate"   # the events-log line of every measurement computed, not read back (cold vs warm runs)


def eval_key(model_keys: list[str], measurement: str, protocol: dict) -> dict:
    """Everything that determines a measurement of trained models, as a JSON-able dict: the models' keys, the
    measurement, the protocol, the package version and, when it is not fp32, the evaluation precision."""
    key = {"models": list(model_keys), "measurement": measurement, "protocol": protocol, "version": __version__}
    return key if precision() == "fp32" else {**key, "precision": precision()}


def model_id(info: dict) -> str:
    """A model's identity in an evaluation key: its configuration key and, for a trained model, its weights' SHA-256."""
    return f"{info['key']}:{info['weights']}" if "weights" in info else info["key"]


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(cache_dir: str | Path, infos: dict | list[dict], measurement: str, protocol: dict,
           compute: Callable[[], Any]) -> Any:
    """compute() for the zoo models described by infos (the info dicts zoo.get returns: key and weights), read from
    the evaluation cache when this measurement under this protocol was made of these weights before."""
    infos = [infos] if isinstance(infos, dict) else infos
    key = eval_key([model_id(i) for i in infos], measurement, protocol)
    path = Path(cache_dir) / "eval" / f"{measurement}-{_digest(key)}.pt"
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob["key"] == key:
                return blob["value"]
            warnings.warn(f"recomputing {measurement}: {path} was written for another evaluation", stacklevel=2)
        except Exception as err:  # truncated or damaged file: any unpickling error
            warnings.warn(f"recomputing {measurement}: {path} is unreadable ({type(err).__name__})", stacklevel=2)
    started = time.perf_counter()
    value = compute()
    report(f"{EVAL_EVENT} {measurement} in {time.perf_counter() - started:.1f} s")
    buf = io.BytesIO()
    torch.save({"key": key, "value": value}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return value
