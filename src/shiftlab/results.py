"""Results JSON: one file per notebook and profile, written atomically.

Schema: {"notebook", "profile", "params", "version", "metrics", "timings", "sha256"}; metrics hold
the numbers a chapter quotes, timings hold wall-clock seconds (the only part that differs between
two runs of the same profile and seed on a CPU), params leave out machine-specific folders, and
sha256 is the digest of everything else, checked on load.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import yaml

from . import __version__
from .runtime import project_root

SCHEMA_KEYS = ("notebook", "profile", "params", "version", "metrics", "timings", "sha256")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write payload to path through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(value):
    """Convert tensors, numpy scalars and tuples into JSON types; NaN/inf are refused."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"results must be finite numbers, got {value}")
    return value


def digest(doc: dict) -> str:
    """SHA-256 of the canonical JSON of a results document without its own digest."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save(results_dir: str | Path, notebook: str, profile: str, params: dict, metrics: dict,
         timings: dict | None = None, models: dict | None = None) -> Path:
    """Write <results_dir>/<notebook>.json atomically, with its digest, and return its path; `models` maps
    '<zoo name>/seed<s>' to the cache key and weights' SHA-256 of every model the notebook loaded."""
    doc = {"notebook": notebook, "profile": profile, "version": __version__,
           "params": _plain({k: v for k, v in params.items() if not k.endswith("_dir")}),
           "metrics": _plain(metrics), "timings": _plain(timings or {}), "models": _plain(models or {})}
    doc["sha256"] = digest(doc)
    path = Path(results_dir) / f"{notebook}.json"
    atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return path


def load(path: str | Path) -> dict:
    """Read a results JSON, checking its schema keys and its digest."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable results JSON ({err})") from err
    missing = [k for k in SCHEMA_KEYS if k not in doc]
    if missing:
        raise ValueError(f"{path} lacks the results keys {missing}; expected {list(SCHEMA_KEYS)}")
    if doc["sha256"] != digest(doc):
        raise ValueError(f"{path} is corrupt or was edited by hand: its content does not match its sha256")
    return doc


def reference_numbers(key: str, path: str | Path | None = None) -> dict:
    """One cited block of published numbers from book/reference_numbers.yaml."""
    path = Path(path) if path else project_root() / "book" / "reference_numbers.yaml"
    doc = yaml.safe_load(path.read_text())
    if key not in doc:
        raise KeyError(f"no block {key!r} in {path}; valid: {', '.join(doc)}")
    return doc[key]
