#!/usr/bin/env python
"""The repository a fork publishes the book from: one URL, written in two places that must agree.

    python scripts/set_repository.py https://github.com/OWNER/REPO   # set it
    python scripts/set_repository.py ""                             # clear it (no repository or launch buttons)
    python scripts/set_repository.py --check                        # exit 1 when the two places disagree

_config.yml's repository.url drives the site's repository, Binder and Colab buttons. Every chapter's first code
cell (tagged `install`) carries the same URL: a notebook opened on Colab installs shiftlab from it, since there is
no clone to install from.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
URL_LINE = re.compile(r'^(  url: )"[^"]*"$', re.M)
GITHUB = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
TAG = "install"
INSTALL_CELL = '''import importlib.util
import subprocess
import sys

REPOSITORY = "{url}"   # _config.yml's repository.url, written by scripts/set_repository.py
if REPOSITORY and importlib.util.find_spec("shiftlab") is None:    # Colab, or a Jupyter without the package
    package = f"shiftlab[book] @ git+{{REPOSITORY}}"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", package])'''


def config_url() -> str:
    match = URL_LINE.search(CONFIG.read_text())
    if match is None:
        sys.exit(f'{CONFIG.name} has no line `  url: "..."` under repository:')
    return match.group(0).split('"')[1]


def cell_source(url: str) -> list[str]:
    lines = INSTALL_CELL.format(url=url).split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def install_cell(nb: dict) -> dict | None:
    return next((c for c in nb["cells"] if TAG in c.get("metadata", {}).get("tags", [])), None)


def write(url: str) -> None:
    CONFIG.write_text(URL_LINE.sub(lambda m: f'{m.group(1)}"{url}"', CONFIG.read_text(), count=1))
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        cell = install_cell(nb)
        if cell is None:
            cell = {"cell_type": "code", "execution_count": None, "id": "install", "outputs": [],
                    "metadata": {"tags": [TAG, "remove-cell"]}, "source": []}
            first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
            nb["cells"].insert(first_code, cell)
        cell["source"] = cell_source(url)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def disagreements() -> list[str]:
    url, out = config_url(), []
    for path in NOTEBOOKS:
        cell = install_cell(json.loads(path.read_text()))
        if cell is None or cell["source"] != cell_source(url):
            out.append(path.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", help="https://github.com/OWNER/REPO, or '' to clear")
    ap.add_argument("--check", action="store_true", help="exit 1 when a chapter's install cell disagrees")
    args = ap.parse_args()
    if args.check or args.url is None:
        bad = disagreements()
        print(f"repository: {config_url() or '(none)'}")
        if bad:
            sys.exit(f"install cell missing or not matching _config.yml in {', '.join(bad)}: "
                     "run python scripts/set_repository.py with the URL")
        return
    url = args.url.strip().rstrip("/").removesuffix(".git")
    if url and not GITHUB.match(url):
        sys.exit(f"{args.url!r} is invalid; valid: https://github.com/OWNER/REPO (Colab opens GitHub only), or ''")
    write(url)
    print(f"repository: {url or '(none)'}: _config.yml and {len(NOTEBOOKS)} chapters")


if __name__ == "__main__":
    main()
