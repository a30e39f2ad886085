#!/usr/bin/env python
"""Run the book's notebooks headless through papermill with a profile's parameters.

    python scripts/run_notebooks.py --profile book [--only 00_background ...] [-p n_eval=50]

Each notebook gets the profile's common and own parameters plus profile, seed, device and the
results/figure/cache folders, is written to <out>/<name>.ipynb with the injected cell hidden from
the site, and is timed. The first failure stops the run with the notebook, the cell and the
error, and keeps the partial notebook for inspection.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab.params import ParameterError, load_profile, notebook_parameters, validate  # noqa: E402

KERNEL = "shiftlab"


def discover(only: list[str] | None) -> list[Path]:
    """The source notebooks in order, or the ones named by --only (names without .ipynb)."""
    found = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not only:
        return found
    names = {p.stem: p for p in found}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise SystemExit(f"error: unknown notebook(s) {unknown}; valid: {', '.join(names)}")
    return [names[n] for n in only]


def parse_overrides(pairs: list[str]) -> dict:
    """-p key=value pairs, values parsed as YAML scalars (so 3 is an int and true a bool)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: -p expects key=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def parameters_for(nb: Path, profile: dict, name: str, out_root: Path, overrides: dict) -> dict:
    """The values injected into one notebook; every key must exist in its parameters cell."""
    results_dir = out_root / "results" / profile["common"]["profile"]
    values = {
        **notebook_parameters(profile, nb.stem),
        "results_dir": str(results_dir),
        "fig_dir": str(results_dir / "figures"),
        "cache_dir": str(out_root / "results" / "cache"),
        **overrides,
    }
    validate(**values)
    declared = {p for p in pm.inspect_notebook(str(nb))}
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ParameterError(f"{nb.name} has no parameter(s) {unknown}; its parameters: {', '.join(sorted(declared))}")
    return values


def hide_injected(path: Path) -> None:
    """Tag the injected-parameters and parameters cells 'remove-cell' so the site does not show them."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if ("injected-parameters" in tags or "parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def partial_path(out: Path) -> Path:
    """Where a notebook is written while it runs: <name>.partial.ipynb, renamed to <name>.ipynb on success."""
    return out.with_name(f"{out.stem}.partial.ipynb")


def run(nb: Path, out: Path, values: dict) -> float:
    """Execute one notebook into out; return its wall time in seconds. The old output is removed first
    and the new one appears only when the whole notebook ran, so a killed or failed run never leaves a
    chapter that mixes old and new results."""
    start = time.perf_counter()
    out.unlink(missing_ok=True)
    partial = partial_path(out)
    pm.execute_notebook(str(nb), str(partial), parameters=values, kernel_name=KERNEL, cwd=str(ROOT),
                        progress_bar=False, log_output=False)
    hide_injected(partial)
    os.replace(partial, out)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--profile", default="book", help="a name in params/ (smoke, book) or a YAML path")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 00_background)")
    ap.add_argument("--out", default=str(ROOT / "book" / "executed"), help="folder for executed notebooks")
    ap.add_argument("--root", default=str(ROOT), help="folder that holds results/ (results, figures, cache)")
    ap.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one parameter for every notebook run")
    args = ap.parse_args(argv)
    try:
        profile = load_profile(args.profile, ROOT / "params")
        notebooks = discover(args.only)
        overrides = parse_overrides(args.overrides)
        jobs = [(nb, parameters_for(nb, profile, nb.stem, Path(args.root).resolve(), overrides))
                for nb in notebooks]
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for nb, values in jobs:
        out = out_dir / nb.name
        print(f"[{values['profile']}] {nb.stem} ...", flush=True)
        try:
            seconds = run(nb, out, values)
        except pm.PapermillExecutionError as err:
            print(f"error: {nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
                  f"The partial notebook is at {partial_path(out)}", file=sys.stderr)
            return 1
        total += seconds
        print(f"[{values['profile']}] {nb.stem} done in {seconds:.1f} s", flush=True)
    print(f"all {len(jobs)} notebook(s) done in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
