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

--record also writes book/claims_protocols.yaml beside claims.yaml: per finding, the claim and protocol texts of
book/claims_text.yaml under which its stated verdict was measured (the entry's templates; the run's own filled text
where it does not match them). A finding whose protocol text differs from the one recorded before keeps the replaced
record's text and stated verdict under ``previous:``, for one record: the next record with the same protocol drops it.
The summary chapter shows each such finding's old and new protocol side by side (``protocol_changes``), and, before a
record is made under a changed protocol, every finding whose current protocol text differs from the recorded one.
"""
from __future__ import annotations

import argparse
import re
import string
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab import findings, prose, results  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402

CLAIMS = ROOT / "book" / "claims.yaml"
REPLICATION = ROOT / "book" / "replication.yaml"
PROTOCOLS = "claims_protocols.yaml"          # written beside the stated verdicts (book/claims.yaml)


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
        second = findings.same_protocol(record.get("verdicts", {}), record.get("protocols", {}), measured)
        stated = findings.agreed(found, second) if second else found
        body = ("# The verdicts the book states (scripts/check_findings.py --record after a book run; where "
                "book/replication.yaml\n# holds a second seed set's verdicts, a finding the two decide differently is "
                "stated not resolved).\n")
        protocols = claims.with_name(PROTOCOLS)
        texts = record_protocols(measured, prose.load()["claims"], read_yaml(protocols), read_yaml(claims))
        atomic_write_bytes(claims, (body + yaml.safe_dump(stated, sort_keys=False, allow_unicode=True)).encode())
        write_protocols(protocols, {k: texts[k] for k in stated if k in texts})
        changed = sorted(k for k, v in texts.items() if "previous" in v)
        print(f"recorded the claim and protocol texts in {protocols}"
              + (f" ({len(changed)} with a changed protocol: {', '.join(changed)})" if changed else ""))
        print(f"recorded {len(stated)} verdicts in {claims}"
              + (f" ({sum(stated[k] != found[k] for k in stated)} not resolved: the seed sets disagree)" if second
                 else " (no replication recorded yet: make replicate)"))
        return 0
    stated = read_yaml(claims) if claims else {}
    record = read_yaml(replication)
    if record.get("profile") == args.profile and record.get("first_seed") != first_seed(folder):
        second = findings.same_protocol(record.get("verdicts", {}), record.get("protocols", {}), measured)
        found = findings.agreed(found, second)     # what both seed sets reach, as the book states
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
    pair and the share that agree, claims and checks apart, and record the second run's verdicts, the protocol text
    each was measured under (``findings.same_protocol`` compares a later run's with it) and the agreement in
    `record`."""
    theirs = [f for _, f in findings.load_all(other)]
    second, protocols = {f.key: f.verdict for f in theirs}, {f.key: f.protocol for f in theirs}
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
    doc = {"profile": profile, "first_seed": first_seed(other), **tally, "verdicts": {k: second[k] for k in both},
           "protocols": {k: protocols[k] for k in both}}
    atomic_write_bytes(record, (body + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).encode())
    print(f"recorded in {record}")
    return 0


# ------------------------------------------------------------ the protocol each stated verdict was measured under

PROTOCOLS_HEADER = """\
# The claim and protocol texts (book/claims_text.yaml's templates) under which each verdict book/claims.yaml states
# was measured, written with it by scripts/check_findings.py --record. `entry` names the text file's entry of a key
# filled from a template (ch01_shrink_{net} -> ch01_shrink_vgg). `previous`: the texts and the stated verdict the last
# record held, where the protocol has changed since; the summary chapter shows them beside the new ones, and the next
# record with an unchanged protocol drops them.
"""


def entry_of(key: str, entries: dict) -> str | None:
    """The entry of book/claims_text.yaml's claims that a finding's key fills: the key itself, else the template
    whose placeholders, filled with words (a character other than a letter, digit or underscore written as an
    underscore, as ``prose.claim`` does), give the key; the one with the most literal characters where several do.
    None when no entry fits (a claim renamed or removed)."""
    if key in entries:
        return key
    fits = []
    for name in entries:
        parts = list(string.Formatter().parse(name))
        if all(field is None for _, field, _, _ in parts):
            continue
        pattern = "".join(re.escape(literal) + ("" if field is None else r"\w+") for literal, field, _, _ in parts)
        if re.fullmatch(pattern, key):
            fits.append((sum(len(literal) for literal, *_ in parts), name))
    return max(fits)[1] if fits else None


def template_values(template: str, text: str) -> dict[str, str] | None:
    """The values that fill `template` (a str.format template of book/claims_text.yaml) to `text`, as strings: {} for
    a template without placeholders that equals the text, None when no values give the text."""
    pattern, seen = "", set()
    for literal, field, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if field is not None:
            name = re.match(r"[^.\[]*", field).group()
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"
            seen.add(name)
    match = re.fullmatch(pattern, text, flags=re.S)
    return None if match is None else match.groupdict()


def readable(template: str, values: dict[str, str]) -> str:
    """A template as a reader sees it: its placeholders filled from `values` (strings, as ``template_values`` gives
    them), '…' for one it does not hold, and its doubled braces single."""
    out = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        out += literal
        if field is not None:
            out += values.get(re.match(r"[^.\[]*", field).group(), "…")
    return out


def _as_template(text: str) -> str:
    """A filled text as a template without placeholders (its braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def record_protocols(measured: list[tuple[str, findings.Finding]], entries: dict, recorded: dict,
                     stated: dict[str, str]) -> dict[str, dict]:
    """The texts to record for every finding of a run: {"entry" (only for a key filled from a template), "claim",
    "protocol", "previous"}. Claim and protocol are the templates of the finding's entry in `entries`
    (book/claims_text.yaml's claims) where the run's filled protocol matches its template, else those `recorded`
    (book/claims_protocols.yaml) holds where it matches theirs (a run older than the text file's last change); a text
    its template does not fill is recorded as the run filled it. ``previous``, where the protocol differs
    from the recorded one: that record's claim and protocol and the verdict `stated` (the book/claims.yaml being
    replaced) gave under them; where the protocol is the recorded one there is none (the side-by-side is shown for one
    record)."""
    out = {}
    for _, f in measured:
        name = entry_of(f.key, entries)
        entry = entries.get(name, {}) if name else {}
        old = recorded.get(f.key) if isinstance(recorded.get(f.key), dict) else {}
        source = next((s for s in (entry, old) if s.get("protocol") is not None
                       and template_values(s["protocol"], f.protocol) is not None), {})
        texts = {field: source[field] if source.get(field) is not None
                 and template_values(source[field], filled) is not None else _as_template(filled)
                 for field, filled in (("claim", f.claim), ("protocol", f.protocol))}
        doc = {"entry": name} if name and name != f.key else {}
        doc.update(texts)
        if old.get("protocol") is not None and old["protocol"] != texts["protocol"]:
            doc["previous"] = {"claim": old.get("claim", ""), "protocol": old["protocol"],
                               "stated": stated.get(f.key, "–")}
        out[f.key] = doc
    return out


def write_protocols(path: Path, texts: dict[str, dict]) -> None:
    """book/claims_protocols.yaml, atomically, with its header."""
    body = yaml.safe_dump(texts, sort_keys=False, allow_unicode=True, width=120)
    atomic_write_bytes(path, (PROTOCOLS_HEADER + body).encode())


def protocol_changes(measured: list[tuple[str, findings.Finding]], recorded: dict, stated: dict[str, str],
                     entries: dict | None = None) -> list[dict]:
    """One row per finding whose protocol changed, for the summary chapter: chapter, claim, the protocol before and
    the verdict the book stated under it, the protocol now, this run's verdict under it ('–' when this run measured
    another protocol or did not measure the finding) and the verdict the book states under it ('–' until a record is
    made with it).

    Which findings changed, and what the book stated before, is ``findings.protocol_before`` (`recorded`:
    book/claims_protocols.yaml, `stated`: book/claims.yaml, `entries`: book/claims_text.yaml's claims, read when
    None). A finding without a recorded text (new, or renamed since) has no row."""
    entries = prose.load()["claims"] if entries is None else entries
    runs = {f.key: (chapter, f) for chapter, f in measured}
    keys = list(dict.fromkeys([*runs, *recorded]))
    rows = []
    for key in keys:
        change = findings.protocol_before(key, recorded, stated, entries)
        if change is None:
            continue
        earlier, then, restated = change
        then, now = then or "–", stated.get(key, "–") if restated else "–"
        entry = entries[recorded[key].get("entry", key)]
        before = earlier["protocol"]
        chapter, f = runs.get(key, (re.sub(r"^ch(\d\d)_.*", r"\1", key), None))
        pairs = ((earlier.get("claim", ""), "claim"), (before, "protocol"), (entry["claim"], "claim"),
                 (entry["protocol"], "protocol"))
        fills = [None if f is None else template_values(t, getattr(f, field)) for t, field in pairs]   # None: not it
        said, now_done = (fills[2], fills[3]) if fills[3] is not None else (None, None)   # a run of the new protocol
        values = {k: v for found in (*fills[:2], said, now_done) for k, v in (found or {}).items()}
        rows.append({"ch.": int(chapter[:2]) if chapter[:2].isdigit() else "–",
                     "claim": f.claim if said is not None else readable(entry["claim"], values),
                     "protocol before": readable(before, values), "book stated": then,
                     "protocol now": f.protocol if now_done is not None else readable(entry["protocol"], values),
                     "this run": f.verdict if now_done is not None else "–", "book states": now})
    return rows


if __name__ == "__main__":
    sys.exit(main())
