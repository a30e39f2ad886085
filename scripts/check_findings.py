#!/usr/bin/env python
"""Print every claim's and check's verdict from a profile's results and compare them with what the book states.

    python scripts/check_findings.py --profile book [--results DIR]          # strict: exit 1 on any difference
    python scripts/check_findings.py --profile book --report                 # the same list, always exit 0
    python scripts/check_findings.py --profile book --replicate DIR          # compare with a second seed set's run
    python scripts/check_findings.py --profile book --record                 # state this run's verdicts

One line per finding: its verdict, the measured effect with its 95 % interval, the chapter and the claim. The book
states its verdicts in book/claims.yaml. The strict check (``make findings``) exits 1 when a stated finding was not
measured or measured with another verdict; --report prints the same and how many differ, and exits 0 (``make book``
builds the site whatever the verdicts are). --replicate DIR compares this run with a run on a disjoint set of seeds
(``make replicate``), per claim, and records the second run's verdicts in book/replication.yaml; --record then states,
for every claim, the verdict both seed sets reach, and not resolved where they disagree (a check both do not pass
fails). Once a replication is recorded, the strict check and --report compare the verdicts both seed sets reach (this
run's with the recorded second set's) with what the book states; a run of the second seed set itself is compared as
it is.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import findings, results  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

CLAIMS = ROOT / "book" / "claims.yaml"
REPLICATION = ROOT / "book" / "replication.yaml"


def label(verdict: str) -> str:
    """A verdict in capitals for the terminal ('not resolved at this budget' as UNRESOLVED)."""
    return "UNRESOLVED" if verdict == findings.UNRESOLVED else verdict.upper()


def read_yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path and path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="book", choices=sorted(p.stem for p in (ROOT / "params").glob("*.yaml")))
    ap.add_argument("--results", type=Path, help="results folder (default: results/<profile>)")
    ap.add_argument("--claims", type=Path,
                    help="the stated verdicts (default: book/claims.yaml for the book profile, none otherwise)")
    ap.add_argument("--replication", type=Path,
                    help="the second seed set's verdicts (default: book/replication.yaml for the book profile, "
                         "results/<profile>/replication.yaml otherwise)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--report", action="store_true", help="print the differences and exit 0")
    mode.add_argument("--replicate", type=Path, metavar="DIR",
                      help="compare with the results of a run on a disjoint seed set and record its verdicts")
    mode.add_argument("--record", action="store_true",
                      help="state the verdicts this run and the replication (if recorded) agree on")
    args = ap.parse_args(argv)
    folder = args.results or ROOT / "results" / args.profile
    replication = args.replication or (REPLICATION if args.profile == "book" else folder / "replication.yaml")
    measured = findings.load_all(folder)
    if not measured:
        print(f"no verdicts in {folder}: run the notebooks first (make notebooks PROFILE={args.profile})")
        return 2
    for chapter, f in measured:
        print(f"{label(f.verdict):<11} {f.interval():<36} {chapter}: {f.claim}  [{f.key}, {f.family}]")
    found = {f.key: f.verdict for _, f in measured}
    if args.replicate:
        return replicate(found, {f.key: f.kind for _, f in measured}, args.replicate, replication, args.profile)
    claims = args.claims or (CLAIMS if args.profile == "book" or args.record else None)
    if args.record:
        record = read_yaml(replication)
        if record and record.get("profile") != args.profile:
            print(f"error: {replication} holds the replication of profile {record.get('profile')!r}, "
                  f"not {args.profile!r}")
            return 2
        second = record.get("verdicts", {})
        stated = findings.agreed(found, second) if second else found
        body = ("# The verdicts the book states (scripts/check_findings.py --record after a book run; where "
                "book/replication.yaml\n# holds a second seed set's verdicts, a finding the two decide differently is "
                "stated not resolved).\n")
        atomic_write_bytes(claims, (body + yaml.safe_dump(stated, sort_keys=False, allow_unicode=True)).encode())
        print(f"recorded {len(stated)} verdicts in {claims}"
              + (f" ({sum(stated[k] != found[k] for k in stated)} not resolved: the seed sets disagree)" if second
                 else " (no replication recorded yet: make replicate)"))
        return 0
    stated = read_yaml(claims) if claims else {}
    record = read_yaml(replication)
    if record.get("profile") == args.profile and record.get("first_seed") != first_seed(folder):
        found = findings.agreed(found, record.get("verdicts", {}))     # what both seed sets reach, as the book states
    differences, new = findings.disagreements(found, stated)
    for line in differences:
        print(f"DIFFERS     {line}")
    for key in new if claims else []:
        print(f"NEW         {key}: measured {found[key]!r}, not stated in {claims.name}")
    kinds = {f.key: f.kind for _, f in measured}
    n_claims = sum(k == findings.CLAIM for k in kinds.values())
    print(f"{n_claims} claims: " + ", ".join(f"{sum(found[k] == v for k in found if kinds[k] == findings.CLAIM)} {v}"
                                            for v in findings.CLAIM_VERDICTS)
          + f"; {len(found) - n_claims} checks: "
          + ", ".join(f"{sum(found[k] == v for k in found if kinds[k] == findings.CHECK)} {v}"
                      for v in findings.CHECK_VERDICTS))
    if claims:
        name = claims.relative_to(ROOT) if claims.is_relative_to(ROOT) else claims
        print(f"{len(differences)} verdict(s) differ from {name}")
    return 1 if differences and not args.report else 0


def first_seed(folder: Path) -> int | None:
    """The seed a run's chapters start from (each decides over n_seeds consecutive seeds from it)."""
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.json")):
        return results.load(path).get("params", {}).get("seed")
    return None


def replicate(found: dict[str, str], kinds: dict[str, str], other: Path, record: Path, profile: str) -> int:
    """Compare this run's verdicts with those of the run in folder `other` (a disjoint seed set): print each finding's
    pair and the share that agree, claims and checks apart, and record the second run's verdicts and the agreement
    in `record`."""
    second = {f.key: f.verdict for _, f in findings.load_all(other)}
    if not second:
        print(f"no verdicts in {other}: run make replicate first")
        return 2
    both = [k for k in found if k in second]
    print()
    for k in both:
        print(f"{'agree ' if found[k] == second[k] else 'DIFFER'}  {found[k]:<28} {second[k]:<28} {k}")
    tally = {}
    for kind, name in ((findings.CLAIM, "claims"), (findings.CHECK, "checks")):
        keys = [k for k in both if kinds[k] == kind]
        agree = sum(found[k] == second[k] for k in keys)
        share = round(agree / len(keys), 4) if keys else 0.0
        tally[name] = {"agreed": agree, "compared": len(keys), "agreement": share}
        print(f"{name}: {agree} of {len(keys)} ({tally[name]['agreement']:.0%}) reach the same verdict on both seed "
              f"sets; {len(keys) - agree} differ and are stated " + ("not resolved" if kind == findings.CLAIM
                                                                      else "failed"))
    body = "# The second seed set's verdicts (scripts/check_findings.py --replicate after make replicate).\n"
    doc = {"profile": profile, "first_seed": first_seed(other), **tally, "verdicts": {k: second[k] for k in both}}
    atomic_write_bytes(record, (body + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode())
    print(f"recorded in {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
