#!/usr/bin/env python
"""Print every claim's verdict from a profile's results and check them against what the book states.

    python scripts/check_findings.py --profile book [--results DIR] [--record [--agree]]

One line per claim: REPRODUCED / REVERSED / UNRESOLVED, the measured effect with its 95 % interval,
and the claim. The book states its verdicts in book/claims.yaml (written by --record after a book
run); the run exits non-zero when a stated claim was not measured, or a claim stated as reproduced
or reversed measured otherwise. Claims measured but not stated yet are listed as NEW. --record --agree, after a
run on another machine, keeps only the verdicts both runs reach (a claim they decide differently was noise: it
becomes not resolved at this budget).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import findings  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

CLAIMS = ROOT / "book" / "claims.yaml"
LABEL = {findings.REPRODUCED: "REPRODUCED", findings.REVERSED: "REVERSED", findings.UNRESOLVED: "UNRESOLVED"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="book", choices=("smoke", "book"))
    ap.add_argument("--results", type=Path, help="results folder (default: results/<profile>)")
    ap.add_argument("--claims", type=Path,
                    help="the stated verdicts (default: book/claims.yaml for the book profile, none otherwise)")
    ap.add_argument("--record", action="store_true", help="write the measured verdicts as the stated ones")
    ap.add_argument("--agree", action="store_true",
                    help="with --record: where the measured and stated verdicts differ, record "
                         "'not resolved at this budget'")
    args = ap.parse_args(argv)
    folder = args.results or ROOT / "results" / args.profile
    measured = findings.load_all(folder)
    if not measured:
        print(f"no verdicts in {folder}: run the notebooks first (make notebooks PROFILE={args.profile})")
        return 2
    for chapter, f in measured:
        print(f"{LABEL[f.verdict]:<11} {f.interval():<36} {chapter}: {f.claim}  [{f.key}]")
    found = {f.key: f.verdict for _, f in measured}
    claims = args.claims or (CLAIMS if args.profile == "book" or args.record else None)
    if args.agree and not args.record:
        print("error: --agree only changes what --record writes; pass both")
        return 2
    if args.record:
        if args.agree and claims.exists():
            found = findings.agreed(found, yaml.safe_load(claims.read_text()) or {})
        body = "# The verdicts the book states (scripts/check_findings.py --record after a book run).\n"
        atomic_write_bytes(claims, (body + yaml.safe_dump(found, sort_keys=False, allow_unicode=True)).encode())
        print(f"recorded {len(found)} verdicts in {claims}")
        return 0
    stated = (yaml.safe_load(claims.read_text()) or {}) if claims and claims.exists() else {}
    failures, new = findings.disagreements(found, stated)
    for line in failures:
        print(f"MISMATCH    {line}")
    for key in new if claims else []:
        print(f"NEW         {key}: measured {found[key]!r}, not stated in {claims.name}")
    print(f"{len(measured)} claims: "
          + ", ".join(f"{sum(v == x for v in found.values())} {x}" for x in findings.VERDICTS)
          + (f"; {len(failures)} mismatches with {claims.name}" if claims else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
