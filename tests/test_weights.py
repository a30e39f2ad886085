"""Trained weights out of and into the model cache: `make weights` packs what a run loaded, `make book WEIGHTS=...`
unpacks it only when every hash checks out, and a run on the unpacked cache trains nothing and gives the same
results."""
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from shiftlab import results, weights

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def archive(smoke_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights") / weights.archive_name("smoke")
    return weights.pack(smoke_run / "results" / "smoke", smoke_run / "results" / "cache", out, "smoke", n_test=200)


def _rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of an archive with change(name, bytes) -> bytes applied to every member."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            blob = change(m.name, tin.extractfile(m).read())
            info = tarfile.TarInfo(m.name)
            info.size = len(blob)
            tout.addfile(info, io.BytesIO(blob))
    return dst


def test_archive_holds_every_model_the_run_loaded(smoke_run, archive):
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        names = set(tar.getnames())
    used = weights.used_models(smoke_run / "results" / "smoke")
    assert {e["key"] for e in manifest["models"]} == set(used)
    assert all(e["file"] in names and 0 <= e["test_accuracy"] <= 100 and e["config"]["name"] == e["name"]
               for e in manifest["models"])


def test_unpack_writes_the_cache_files_byte_for_byte(smoke_run, archive, tmp_path):
    assert weights.unpack(str(archive), tmp_path) == len(weights.used_models(smoke_run / "results" / "smoke"))
    for path in tmp_path.glob("*.pt"):
        assert path.read_bytes() == (smoke_run / "results" / "cache" / path.name).read_bytes()
    assert weights.unpack(str(archive), tmp_path) == 0      # all there already


@pytest.mark.parametrize("fault", ["corrupt model", "foreign version", "not an archive"])
def test_bad_archive_is_refused_in_one_line_and_leaves_the_cache_alone(archive, tmp_path, fault):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "kept.pt").write_bytes(b"already here")
    if fault == "corrupt model":
        flipped = []

        def flip(name, blob):
            if name.endswith(".pt") and not flipped:
                flipped.append(name)
                return blob[:-1] + bytes([blob[-1] ^ 1])
            return blob
        bad = _rewrite(archive, tmp_path / "bad.tar", flip)
    elif fault == "foreign version":
        bad = _rewrite(archive, tmp_path / "bad.tar", lambda name, blob: blob if name != "manifest.json" else
                       json.dumps({**json.loads(blob), "shiftlab": "0.0.1"}).encode())
    else:
        bad = tmp_path / "bad.tar"
        bad.write_bytes(b"not a tar file")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "weights.py"), "unpack", str(bad),
                           "--cache-dir", str(cache)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("refused: ") and proc.stderr.count("\n") == 1
    assert sorted(p.name for p in cache.iterdir()) == ["kept.pt"]


def test_a_run_on_the_unpacked_cache_trains_nothing_and_gives_the_same_results(smoke_run, archive, tmp_path):
    weights.unpack(str(archive), tmp_path / "results" / "cache")
    name = "07_consistency_vs_filter"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), "--profile", "smoke",
                           "--only", name, "--out", str(tmp_path / "executed"), "--root", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = (tmp_path / "results" / "smoke" / "events.log").read_text()
    assert events and not any(line.startswith("train ") for line in events.splitlines()), events
    again = results.load(tmp_path / "results" / "smoke" / f"{name}.json")
    first = results.load(smoke_run / "results" / "smoke" / f"{name}.json")
    assert again["metrics"] == first["metrics"] and again["models"] == first["models"]
