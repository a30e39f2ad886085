"""A profile's trained models as one archive: packed from what its last run loaded, unpacked into the model cache
only after every hash checks out.

The archive, shiftlab-<version>-<profile>-weights.tar, holds manifest.json and models/<name>-<key>.pt (the cache's
own files). The manifest names the format, the shiftlab version and the profile, and for each model its zoo name,
seed, cache key, full configuration, test accuracy (%) and the SHA-256 of its file and of its weights. Models are
cached under a key that includes the shiftlab version, so an archive of another version is refused: its models
would never be looked up.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import torch
from tqdm import tqdm

from . import __version__, data, inference, metrics, results, zoo

FORMAT = "shiftlab-weights/1"
MANIFEST = "manifest.json"


class WeightsError(ValueError):
    """An archive that is not a whole, untouched shiftlab weights archive of this version."""


def archive_name(profile: str) -> str:
    return f"shiftlab-{__version__}-{profile}-weights.tar"


def used_models(results_dir: str | Path) -> dict[str, dict]:
    """{cache key: {'name', 'seed', 'weights'}} of every model the results files of a profile's folder record."""
    out = {}
    for path in sorted(Path(results_dir).glob("[0-9][0-9]_*.json")):
        for label, model in results.load(path).get("models", {}).items():
            name, seed = label.rsplit("/seed", 1)
            out[model["key"]] = {"name": name, "seed": int(seed), "weights": model["weights"]}
    if not out:
        raise WeightsError(f"no model is recorded in {results_dir}: run the profile's notebooks first")
    return out


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _checkpoint(blob: bytes, where: str) -> dict:
    """A cache file's content, checked whole: its weights match their SHA-256."""
    try:
        ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        ok = _sha256(ckpt["weights"]) == ckpt["sha256"]
    except Exception as err:
        raise WeightsError(f"{where} is not a readable model checkpoint ({type(err).__name__})") from err
    if not ok:
        raise WeightsError(f"{where} is corrupt: its weights do not match their SHA-256")
    return ckpt


def test_accuracy(path: Path, config: dict, n_test: int) -> float:
    """Accuracy (%) of a cached model on the first n_test test images of its dataset, presented as it was trained
    (``zoo.test_inputs``)."""
    net = zoo.load_checkpoint(path, config).model
    test = data.load(config["data"]["dataset"], "test").subset(n_test, 0)
    return 100 * metrics.accuracy(inference.predict_logits(net, zoo.test_inputs(config, test)), test.labels)


def pack(results_dir: str | Path, cache_dir: str | Path, out: str | Path, profile: str, n_test: int = 10000) -> Path:
    """Write the archive of every model the profile's last run loaded (atomically: whole or not at all)."""
    models, out = used_models(results_dir), Path(out)
    entries, files = [], []
    for key, m in tqdm(sorted(models.items(), key=lambda kv: (kv[1]["name"], kv[1]["seed"])), desc="models",
                       unit="model"):
        path = Path(cache_dir) / f"{m['name']}-{key}.pt"
        if not path.is_file():
            raise WeightsError(f"{path} is missing: the cache no longer holds a model the run used; run it again")
        blob = path.read_bytes()
        ckpt = _checkpoint(blob, str(path))
        entries.append({"name": m["name"], "seed": m["seed"], "key": key, "file": f"models/{path.name}",
                        "sha256": _sha256(blob), "weights": ckpt["sha256"], "config": ckpt["config"],
                        "test_accuracy": round(test_accuracy(path, ckpt["config"], n_test), 4), "n_test": n_test})
        files.append(blob)
    manifest = {"format": FORMAT, "shiftlab": __version__, "profile": profile, "models": entries}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, blob in [(MANIFEST, json.dumps(manifest, indent=1).encode()),
                           *((e["file"], b) for e, b in zip(entries, files, strict=True))]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(blob), 0o644
            tar.addfile(info, io.BytesIO(blob))
    results.atomic_write_bytes(out, buf.getvalue())
    return out


def _open(source: str) -> Path:
    """A local path, or a URL downloaded to a temporary file."""
    if "://" not in source:
        if not Path(source).is_file():
            raise WeightsError(f"{source} does not exist")
        return Path(source)
    tmp = Path(tempfile.mkstemp(suffix=".tar")[1])
    try:
        urllib.request.urlretrieve(source, tmp)
    except OSError as err:
        raise WeightsError(f"{source} could not be downloaded ({err})") from err
    return tmp


def unpack(source: str, cache_dir: str | Path) -> int:
    """Check every model of the archive (its file's SHA-256, its weights' SHA-256, its configuration's cache key,
    this shiftlab version) and only then write the ones the cache lacks; returns how many were written."""
    path = _open(source)
    try:
        with tarfile.open(path) as tar:
            manifest = json.loads(tar.extractfile(MANIFEST).read())
            if manifest.get("format") != FORMAT:
                raise WeightsError(f"{source} is not a shiftlab weights archive (format {manifest.get('format')!r})")
            if manifest.get("shiftlab") != __version__:
                raise WeightsError(f"{source} was made by shiftlab {manifest.get('shiftlab')}, this is {__version__}: "
                                   "its models are cached under other keys; pack them again with this version")
            blobs = {}
            for e in manifest["models"]:
                blob = tar.extractfile(e["file"]).read()
                if _sha256(blob) != e["sha256"]:
                    raise WeightsError(f"{source}: {e['file']} does not match its SHA-256 in the manifest")
                ckpt = _checkpoint(blob, f"{source}: {e['file']}")
                if zoo.cache_key(ckpt["config"]) != e["key"] or ckpt["sha256"] != e["weights"]:
                    raise WeightsError(f"{source}: {e['file']} holds another model than its manifest entry")
                blobs[Path(e["file"]).name] = blob
    except (tarfile.TarError, KeyError, AttributeError, json.JSONDecodeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else ""
        raise WeightsError(f"{source} is not a whole shiftlab weights archive ({type(err).__name__}: {first})") from err
    written = 0
    for name, blob in blobs.items():
        target = Path(cache_dir) / name
        if not (target.is_file() and _sha256(target.read_bytes()) == _sha256(blob)):
            results.atomic_write_bytes(target, blob)
            written += 1
    return written
