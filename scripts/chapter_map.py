#!/usr/bin/env python
"""Write the chapter-to-code map: for each chapter, the shiftlab functions its code cells call, the zoo networks it
names and the claims it decides, read from the notebooks' source.

    python scripts/chapter_map.py [--check]

Writes book/chapter_code.md (included in the Reproducing page); --check exits 1 when that file is not what the
notebooks give (the tests run it).
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import zoo  # noqa: E402

OUT = ROOT / "book" / "chapter_code.md"
DECIDERS = ("by_seed", "by_image")   # findings.<decider>(key, ...): the claims a chapter decides
PLUMBING = ("chapter", "plots", "results")   # a chapter's set-up, figures and files: not what it measures


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def chapter_uses(path: Path) -> dict[str, list[str]]:
    """The shiftlab functions (module.name) a notebook's code calls, the zoo entries it names, the claims it decides."""
    nb = nbformat.read(path, as_version=4)
    tree = ast.parse("\n".join(c.source for c in nb.cells if c.cell_type == "code"
                               and "parameters" not in c.metadata.get("tags", [])))
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and (node.module or "").startswith("shiftlab") for alias in node.names}
    calls, entries, claims = set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in modules:
            if node.func.value.id not in PLUMBING:
                calls.add(f"{node.func.value.id}.{node.func.attr}")
            if node.func.attr in DECIDERS and node.args and isinstance(node.args[0], ast.Constant):
                claims.append(node.args[0].value)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in zoo.ENTRIES:
            entries.add(node.value)
    return {"title": [_title(nb)], "functions": sorted(calls), "zoo": sorted(entries), "claims": claims}


def render() -> str:
    rows = ["| chapter | shiftlab functions it calls | zoo networks it names | claims it decides |",
            "| --- | --- | --- | --- |"]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        uses = chapter_uses(path)
        cell = lambda items: ", ".join(f"`{i}`" for i in items) or "–"   # noqa: E731
        rows.append(f"| {path.stem}: {uses['title'][0]} | {cell(uses['functions'])} | {cell(uses['zoo'])} | "
                    f"{cell(uses['claims'])} |")
    return ("Generated from the notebooks by `scripts/chapter_map.py`. A function named here is defined in "
            "`src/shiftlab/<module>.py` (set-up, figures and results files, from `chapter`, `plots` and `results`, are "
            "left out); a zoo network in `zoo.ENTRIES` (networks chosen by a parameter, such as the "
            "filter sizes of chapter 7, are named through `zoo.antialiased` and `zoo.canvas_stages`).\n\n"
            + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when book/chapter_code.md is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python scripts/chapter_map.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
