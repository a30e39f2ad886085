"""How to cite the book: CITATION.cff is valid Citation File Format (cffconvert, in its own venv: `make lint-tools`),
and the front page's BibTeX entry is built from it with the package's version, the one place the version is written."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import shiftlab

ROOT = Path(__file__).resolve().parent.parent
CFF = ROOT / "CITATION.cff"
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import shiftlab_site  # noqa: E402


def cffconvert(path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.prefix) / "cff" / "bin" / "cffconvert"
    if not exe.is_file():
        pytest.fail(f"the citation test needs cffconvert at {exe}: `make lint-tools` installs it")
    return subprocess.run([str(exe), "--validate", "-i", str(path)], capture_output=True, text=True)


def test_citation_file_is_valid_cff():
    proc = cffconvert(CFF)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validator_rejects_a_broken_citation_file(tmp_path):
    broken = yaml.safe_load(CFF.read_text())
    del broken["authors"]
    path = tmp_path / "CITATION.cff"
    path.write_text(yaml.safe_dump(broken))
    assert cffconvert(path).returncode != 0


def test_version_is_written_once():
    assert "version" not in yaml.safe_load(CFF.read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "shiftlab.__version__"' in pyproject


def test_bibtex_entry_carries_the_cff_title_authors_and_version():
    cff = yaml.safe_load(CFF.read_text())
    entry = shiftlab_site.bibtex(cff, shiftlab.__version__, "2026", "https://example.org/shiftlab")
    assert entry.startswith("@software{shiftlab,") and entry.endswith("}")
    assert "{{" + cff["title"] + "}}" in entry
    assert "{{the shiftlab authors}}" in entry
    assert f"{{{shiftlab.__version__}}}" in entry and "{https://example.org/shiftlab}" in entry
    assert "url" not in shiftlab_site.bibtex(cff, "1.0", "2026")
    person = shiftlab_site.bibtex({"title": "t", "authors": [{"family-names": "Zhang", "given-names": "Richard"}]},
                                  "1.0", "2026")
    assert "{Zhang, Richard}" in person
