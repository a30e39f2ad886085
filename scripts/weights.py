#!/usr/bin/env python
"""Trained models in and out of the model cache (shiftlab.weights).

    python scripts/weights.py pack --profile book       # results/shiftlab-<version>-book-weights.tar
    python scripts/weights.py unpack ARCHIVE-OR-URL      # into results/cache, after checking every hash

`make weights` packs; `make book WEIGHTS=...` unpacks before the run, which then trains nothing it was given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="archive every model the profile's last run loaded")
    p.add_argument("--profile", default="book")
    p.add_argument("--root", default=str(ROOT), help="folder that holds results/")
    p.add_argument("--out", help="archive path (default: results/shiftlab-<version>-<profile>-weights.tar)")
    p.add_argument("--n-test", type=int, default=10000, help="test images for each model's accuracy")
    u = sub.add_parser("unpack", help="check an archive and copy its models into the cache")
    u.add_argument("source", help="archive path or URL")
    u.add_argument("--cache-dir", default=str(ROOT / "results" / "cache"))
    args = ap.parse_args(argv)
    try:
        if args.command == "pack":
            root = Path(args.root)
            out = Path(args.out) if args.out else root / "results" / weights.archive_name(args.profile)
            path = weights.pack(root / "results" / args.profile, root / "results" / "cache", out, args.profile,
                                n_test=args.n_test)
            print(f"packed {path}")
        else:
            n = weights.unpack(args.source, args.cache_dir)
            print(f"unpacked {n} model(s) into {args.cache_dir} (the others were there already)")
    except weights.WeightsError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
