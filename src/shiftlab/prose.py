"""The book's words for what it measures, kept in one text file beside the notebooks: book/claims_text.yaml.

Two sections. ``claims``: for every claim key the claim sentence, its protocol, the paper's result (optional), its
kind and what each of its verdicts means (a meaning left empty, ``~``, is the finding's own sentence). Three kinds:

- a *claim* (the default), a comparison that could come out either way: ``reproduced``, ``reversed``,
  ``not resolved``; ``primary: true`` marks one of the papers' central claims (corrected for multiplicity within its
  chapter, ``findings.adjust``), the others are exploratory;
- an *equivalence claim*, a claim with a ``margin`` (in the finding's unit, e.g. 0.005 = 0.5 points): "keeps
  accuracy", decided by two one-sided tests: ``equivalent``, ``better``, ``worse``, ``not resolved``;
- a *check* (``kind: check``), an existence or by-construction measurement reported with its value and never counted
  as a reproduction: ``passes``, ``fails``; it passes when the interval is above zero (``expect: positive``, the
  default) or, for ``expect: zero`` with a ``margin``, when two one-sided tests put the effect within the margin.

``outcomes``: for every text a chapter glues under a name, one variant per outcome the notebook computes (e.g.
``exact`` / ``inexact``). Every text is a ``str.format`` template filled from values the
notebook passes by name (``{m_hi}``, ``{gap:.1e}``; a literal brace is doubled). A claim key may itself hold
placeholders (``ch08_flips_fall_{move}``): the finding's key is the key filled, every character other than a letter,
digit or underscore replaced by an underscore. An entry's ``items`` gives, for a placeholder whose value is a list of
dicts, the template of one item; the items are joined by ", ".

A missing key, placeholder, value or outcome, an unknown verdict, and a value no text of the entry uses are errors
that name what is valid.
"""
from __future__ import annotations

import functools
import re
import string
from pathlib import Path

import yaml

from .runtime import project_root

TEXT_FILE = Path("book") / "claims_text.yaml"
KINDS = ("claim", "check")
EXPECTS = ("positive", "zero")                          # a check passes when its interval is above zero / contains it
# the verdicts' names in the file, by the kind of entry
MEANINGS = {"claim": ("reproduced", "reversed", "not resolved"),
            "equivalence": ("equivalent", "better", "worse", "not resolved"),
            "check": ("passes", "fails")}
CLAIM_FIELDS = ("claim", "protocol")                     # required texts of a claim
OPTIONAL_FIELDS = ("paper", "items", "kind", "primary", "margin", "expect")
SECTIONS = ("claims", "outcomes")


class ProseError(ValueError):
    """The text file lacks what a notebook asks for, or holds what no notebook can fill."""


def path() -> Path:
    """The project's text file of claim and outcome texts."""
    return project_root() / TEXT_FILE


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently). A sentence two
    claims share is written once with an anchor (``&name``) and repeated with an alias (``*name``)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ProseError(f"{key_node.start_mark}: the key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(file: str | Path | None = None) -> dict:
    """The text file's sections {"claims": {...}, "outcomes": {...}}, checked (read again when the file changes)."""
    file = Path(file) if file else path()
    if not file.is_file():
        raise ProseError(f"the book's text file {file} does not exist")
    return _load(file, file.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load(file: Path, mtime_ns: int) -> dict:
    doc = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeys) or {}
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise ProseError(f"{file}: unknown sections {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    doc = {section: doc.get(section) or {} for section in SECTIONS}
    for key, entry in doc["claims"].items():
        _check_claim(file, key, entry)
    for name, entry in doc["outcomes"].items():
        _check_outcome(file, name, entry)
    return doc


def meanings(entry: dict) -> tuple[str, ...]:
    """The verdict names an entry of the claims section gives meanings for: by its kind, and for a claim with a
    margin the equivalence verdicts."""
    kind = entry.get("kind", "claim")
    return MEANINGS["check" if kind == "check" else "equivalence" if "margin" in entry else "claim"]


def _check_kind(where: str, entry: dict) -> None:
    kind = entry.get("kind", "claim")
    if kind not in KINDS:
        raise ProseError(f"{where}: kind {kind!r} is unknown; valid: {', '.join(KINDS)}")
    only = {"primary": "claim", "expect": "check"}
    for field, owner in only.items():
        if field in entry and kind != owner:
            raise ProseError(f"{where}: {field} is a field of a {owner}, and this entry is a {kind}")
    zero = kind == "check" and entry.get("expect") == "zero"
    if kind == "check" and ("margin" in entry) != zero:
        raise ProseError(f"{where}: a check that expects zero states its margin, and no other check has one")
    if not isinstance(entry.get("primary", False), bool):
        raise ProseError(f"{where}: primary is true or false")
    margin = entry.get("margin", 1.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin <= 0:
        raise ProseError(f"{where}: margin is a positive number in the finding's unit, got {margin!r}")
    if entry.get("expect", "positive") not in EXPECTS:
        raise ProseError(f"{where}: expect {entry['expect']!r} is unknown; valid: {', '.join(EXPECTS)}")


def _check_claim(file: Path, key: str, entry) -> None:
    where = f"{file}: claim {key!r}"
    if not isinstance(entry, dict):
        raise ProseError(f"{where} is not a mapping of texts")
    _check_kind(where, entry)
    verdicts = meanings(entry)
    valid = (*CLAIM_FIELDS, *OPTIONAL_FIELDS, *verdicts)
    unknown = [k for k in entry if k not in valid]
    missing = [k for k in (*CLAIM_FIELDS, *verdicts) if k not in entry]
    if unknown:
        raise ProseError(f"{where} has unknown fields {unknown}; valid: {', '.join(valid)}")
    if missing:
        raise ProseError(f"{where} lacks {missing} (this entry has {', '.join((*CLAIM_FIELDS, *verdicts))}; "
                         f"a meaning may be ~, the finding's own sentence)")
    for field in (*CLAIM_FIELDS, "paper"):
        if field in entry and not isinstance(entry[field], str):
            raise ProseError(f"{where}: {field} is not a text")
    for verdict in verdicts:
        if entry[verdict] is not None and not isinstance(entry[verdict], str):
            raise ProseError(f"{where}: {verdict!r} is neither a text nor ~")
    _check_items(where, entry)
    for text in (key, *_texts(entry)):
        _fields(text, where)


def _check_outcome(file: Path, name: str, entry) -> None:
    where = f"{file}: outcome text {name!r}"
    if not isinstance(entry, dict) or not [k for k in entry if k != "items"]:
        raise ProseError(f"{where} is not a mapping of outcome names to texts")
    for outcome, text in entry.items():
        if outcome != "items" and not isinstance(text, str):
            raise ProseError(f"{where}: outcome {outcome!r} is not a text")
    _check_items(where, entry)
    for text in _texts(entry):
        _fields(text, where)


def _check_items(where: str, entry: dict) -> None:
    items = entry.get("items", {})
    if not isinstance(items, dict) or not all(isinstance(t, str) for t in items.values()):
        raise ProseError(f"{where}: items must map placeholder names to the template of one item")
    for name, template in items.items():
        _fields(template, f"{where}, items of {name}")


def _texts(entry: dict) -> list[str]:
    """Every template of an entry that values fill (meanings left empty excluded; item templates are filled by the
    items; the kind and the check's expectation are names, not texts)."""
    return [t for k, t in entry.items() if k not in ("items", "kind", "expect") and isinstance(t, str)]


def _fields(template: str, where: str) -> set[str]:
    """The value names a template's placeholders use ({gap:.1e} uses gap, {vgg[acc]} uses vgg)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ProseError(f"{where}: {template!r} is not a valid template ({err}; a literal brace is doubled)") from err
    names = set()
    for _, field, _, _ in parsed:
        if field is None:
            continue
        root = re.match(r"[^.\[]*", field).group()
        if not root.isidentifier():
            raise ProseError(f"{where}: {template!r} has the placeholder {{{field}}}; placeholders are named values")
        names.add(root)
    return names


def _fill(template: str, values: dict, items: dict, where: str) -> str:
    needed = _fields(template, where)
    missing = sorted(needed - set(values))
    if missing:
        raise ProseError(f"{where} needs the values {missing}; given: {', '.join(sorted(values)) or 'none'}")
    filled = {}
    for name in needed:
        value = values[name]
        if name in items:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
                raise ProseError(f"{where}: {name} is a list of items (dicts), got {value!r}")
            value = ", ".join(_fill(items[name], item, {}, f"{where}, an item of {name}") for item in value)
        filled[name] = value
    return template.format_map(filled)


def _check_values(entry: dict, key: str, values: dict, where: str) -> None:
    used = set().union(*(_fields(t, where) for t in (key, *_texts(entry))))
    unused = sorted(set(values) - used)
    if unused:
        raise ProseError(f"{where} uses no value named {unused}; its placeholders: {', '.join(sorted(used)) or 'none'}")


def names(section: str, key: str, file: str | Path | None = None) -> set[str]:
    """The value names the texts of entry `key` of a section ("claims" or "outcomes") use, its key's included."""
    if section not in SECTIONS:
        raise ProseError(f"no section {section!r}; valid: {', '.join(SECTIONS)}")
    entries = load(file)[section]
    if key not in entries:
        raise ProseError(f"no {section} entry {key!r} in {file or path()}; valid: {', '.join(entries)}")
    where = f"{section} entry {key!r}"
    return set().union(*(_fields(t, where) for t in (key if section == "claims" else "", *_texts(entries[key]))))


def claim(key: str, values: dict | None = None, file: str | Path | None = None) -> dict:
    """The texts of claim `key` filled with values: {"key", "claim", "protocol", "paper", "means", "kind", "primary",
    "margin", "expect"}, where key is the finding's key (the claim key filled), means maps each verdict name of the
    entry to its text (None: the finding's own sentence), margin is None for a claim without one."""
    values = dict(values or {})
    claims = load(file)["claims"]
    if key not in claims:
        raise ProseError(f"no claim {key!r} in {file or path()}; valid: {', '.join(claims)}")
    entry, where = claims[key], f"claim {key!r}"
    _check_values(entry, key, values, where)
    items = entry.get("items", {})
    texts = {field: _fill(entry.get(field, ""), values, items, f"{where} ({field})")
             for field in (*CLAIM_FIELDS, "paper")}
    means = {verdict: None if entry[verdict] is None else _fill(entry[verdict], values, items, f"{where} ({verdict})")
             for verdict in meanings(entry)}
    return {"key": re.sub(r"\W", "_", _fill(key, values, {}, where)), **texts, "means": means,
            "kind": entry.get("kind", "claim"), "primary": entry.get("primary", False), "margin": entry.get("margin"),
            "expect": entry.get("expect", "positive")}


def outcome(name: str, outcome: str, values: dict | None = None, file: str | Path | None = None) -> str:
    """The text `name` for the outcome measured, filled with values (each value must be used by some outcome of it)."""
    values = dict(values or {})
    outcomes = load(file)["outcomes"]
    if name not in outcomes:
        raise ProseError(f"no outcome text {name!r} in {file or path()}; valid: {', '.join(outcomes)}")
    entry, where = outcomes[name], f"outcome text {name!r}"
    variants = [k for k in entry if k != "items"]
    if outcome not in variants:
        raise ProseError(f"{where} has no outcome {outcome!r}; valid: {', '.join(variants)}")
    _check_values(entry, "", values, where)
    return _fill(entry[outcome], values, entry.get("items", {}), f"{where} ({outcome})")
