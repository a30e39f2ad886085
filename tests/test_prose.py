"""Prose lives in book/claims_text.yaml, code in cells: the notebooks hold no verdict sentence and glue no text built
from English words; every claim and outcome text they use is in the file, complete, and every entry there is used."""
import ast
import os
import re

import nbformat
import pytest

from shiftlab import prose

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FINDINGS = ("findings.by_seed", "findings.by_image")
GLUE = ("chapter.glue", "chapter.glue_text", "glue", "print")
VERDICT_NAMES = {"REPRODUCED", "REVERSED", "UNRESOLVED"}
NOT_TEXT = {"seed", "item", "unit"}            # by_seed / by_image arguments that fill no text


def _code(path) -> ast.Module:
    return ast.parse("\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"))


def _text(node) -> str | None:
    """A string literal's text (an f-string's literal parts, each value as X), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def _words(text: str) -> int:
    """Whitespace-separated tokens with two letters or more (an identifier such as not_run is one)."""
    return sum(len(re.findall(r"[A-Za-z]", token)) >= 2 for token in text.split())


def _is_sentence(text: str) -> bool:
    return _words(text) >= 4 and text.rstrip().endswith((".", "!", "?"))


def _prose_strings(tree: ast.Module):
    """Every string literal of the code but docstrings and the messages of raise and assert (code, not the book's
    prose), and the literal parts inside f-strings (their f-string is yielded whole)."""
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, (ast.Raise, ast.Assert)):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
    return [(node, text) for node in ast.walk(tree) if (text := _text(node)) is not None and id(node) not in skip]


def _direct_strings(node):
    """The string literals an argument expression is built from: the literal itself, the parts of a concatenation,
    both branches of a conditional, the items of a list, tuple or dict (not the keys, columns and arguments it reads
    data with: a subscript or a call is not text)."""
    if (text := _text(node)) is not None:
        yield text
    elif isinstance(node, ast.BinOp):
        yield from (*_direct_strings(node.left), *_direct_strings(node.right))
    elif isinstance(node, ast.IfExp):
        yield from (*_direct_strings(node.body), *_direct_strings(node.orelse))
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        yield from (t for e in node.elts for t in _direct_strings(e))
    elif isinstance(node, ast.Dict):
        yield from (t for v in node.values for t in _direct_strings(v))


def _calls(tree: ast.Module, names) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) in names]


def _assigned(tree: ast.Module) -> dict[str, ast.expr]:
    """The expression last assigned to each name by a plain assignment."""
    return {n.targets[0].id: n.value for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)}


def _dicts(tree: ast.Module) -> dict[str, set[str]]:
    """The keys of every dict literal assigned to a name (what a **name argument passes)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.value.keys):
            out.setdefault(node.targets[0].id, set()).update(k.value for k in node.value.keys)
    return out


def _passed(call: ast.Call, dicts: dict[str, set[str]], where: str) -> set[str]:
    """The value names a call passes by keyword, **dict literals included."""
    names = set()
    for kw in call.keywords:
        if kw.arg is not None:
            names.add(kw.arg)
        elif isinstance(kw.value, ast.Name) and kw.value.id in dicts:
            names |= dicts[kw.value.id]
        else:
            pytest.fail(f"{where}: **{ast.unparse(kw.value)} is not a dict literal assigned to a name; "
                        "pass values by name")
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_holds_a_verdict_sentence(path):
    """No means= argument or dict keyed by verdicts, no sentence as a literal, no words glued or printed, and findings
    take their key, the differences and values only (claims, protocols and papers are in the text file)."""
    tree = _code(path)
    means = [ast.unparse(n)[:80] for n in ast.walk(tree)
             if isinstance(n, ast.Call) and any(kw.arg == "means" for kw in n.keywords)]
    assert not means, f"{path.stem}: a means= argument types what a verdict means: {means}"
    keyed = [ast.unparse(k) for n in ast.walk(tree) if isinstance(n, ast.Dict)
             for k, v in zip(n.keys, n.values, strict=True) if isinstance(k, ast.Attribute) and k.attr in VERDICT_NAMES
             and any(_words(t) >= 2 for t in _direct_strings(v))]
    assert not keyed, f"{path.stem}: a dict keyed by verdicts ({keyed}) types what they mean"
    sentences = [text for _, text in _prose_strings(tree) if _is_sentence(text)]
    assert not sentences, f"{path.stem}: sentences in code cells (they belong in book/claims_text.yaml): {sentences}"
    for call in _calls(tree, GLUE + FINDINGS):
        name = ast.unparse(call.func)
        args = (*call.args, *(kw.value for kw in call.keywords))
        words = [t for arg in args for t in _direct_strings(arg) if _words(t) >= 2]
        assert not words, f"{path.stem}: {name} is given words built in the cell: {words}"
        if name in FINDINGS:
            assert len(call.args) == 2, f"{path.stem}: {name}({ast.unparse(call)[:60]}...) takes the claim key and " \
                                        "the differences; its texts come from book/claims_text.yaml"


# outcome texts the library glues for every chapter, not a notebook: chapter.Run.save glues "convergence" and, for
# the equivalence claims a chapter names (Run.equivalence_arms), "equivalence_budget"
# (its four outcomes are each reached in tests/test_convergence.py)
LIBRARY_OUTCOMES = {"convergence", "equivalence_budget", "protocol_change"}


def _uses():
    """Every claim key and outcome text the notebooks use: {key: [(notebook, names passed)]}, {name: [(notebook,
    outcome names, names passed)]}."""
    claims, outcomes = {}, {}
    for path in NOTEBOOKS:
        tree = _code(path)
        dicts = _dicts(tree)
        for call in _calls(tree, FINDINGS):
            key = call.args[0]
            assert isinstance(key, ast.Constant), f"{path.stem}: a claim key is a string literal: {ast.unparse(key)}"
            claims.setdefault(key.value, []).append((path.stem, _passed(call, dicts, path.stem) - NOT_TEXT))
        for call in _calls(tree, ("chapter.glue_text",)):
            name = call.args[0]
            assert isinstance(name, ast.Constant), f"{path.stem}: an outcome text's name is a string literal"
            outcome = call.args[1]
            if isinstance(outcome, ast.Name):
                outcome = _assigned(tree)[outcome.id]
            chosen = set(_direct_strings(outcome))
            outcomes.setdefault(name.value, []).append((path.stem, chosen, _passed(call, dicts, path.stem)))
    return claims, outcomes


def test_every_claim_a_notebook_decides_has_complete_words_and_every_entry_is_used():
    texts = prose.load()           # checks every entry: fields, the three verdicts, templates
    claims, outcomes = _uses()
    assert set(claims) - set(texts["claims"]) == set(), "claims no entry of book/claims_text.yaml describes"
    assert set(texts["claims"]) - set(claims) == set(), "entries of book/claims_text.yaml no notebook decides"
    for key, uses in claims.items():
        entry = texts["claims"][key]
        assert all(verdict in entry for verdict in prose.meanings(entry)) and entry["claim"] and entry["protocol"], key
        for notebook, passed in uses:
            assert passed == prose.names("claims", key), \
                f"{notebook}: {key} passes {sorted(passed)}, its texts use {sorted(prose.names('claims', key))}"
    written = set(texts["outcomes"]) - LIBRARY_OUTCOMES
    assert set(outcomes) ^ written == set(), "outcome texts used but not written, or written but unused"
    for name, uses in outcomes.items():
        variants = set(texts["outcomes"][name]) - {"items"}
        chosen = set().union(*(c for _, c, _ in uses))
        assert chosen == variants, f"{name}: the notebooks choose {sorted(chosen)}, the file has {sorted(variants)}"
        for notebook, _, passed in uses:
            assert passed == prose.names("outcomes", name), \
                f"{notebook}: {name} passes {sorted(passed)}, its texts use {sorted(prose.names('outcomes', name))}"


def test_the_guard_finds_what_the_notebooks_used_to_hold(tmp_path):
    """The checks above fail on the code they replaced: a means dict, a claim built in the call, a glued sentence."""
    old = '''found = [findings.by_seed("k", f"Consistency rises from filter {m_lo} to {m_hi}", diffs,
                         means={findings.REPRODUCED: "Blurring helps the output.",
                                findings.UNRESOLVED: "The seeds do not decide."})]
chapter.glue("lattice_means", "Here exact invariance holds on the lattice." if exact else "It does not.")
print(f"results written to {path.name} in the profile's results folder")
'''
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(old)])
    nb.metadata["kernelspec"] = {"name": "shiftlab"}
    nbformat.write(nb, tmp_path / "00_old.ipynb")
    with pytest.raises(AssertionError, match="means="):
        test_no_code_cell_holds_a_verdict_sentence(tmp_path / "00_old.ipynb")
    tree = ast.parse(old)
    assert sorted(t for _, t in _prose_strings(tree) if _is_sentence(t)) == [
        "Blurring helps the output.", "Here exact invariance holds on the lattice.", "The seeds do not decide."]
    glued = [t for c in _calls(tree, GLUE) for a in c.args for t in _direct_strings(a) if _words(t) >= 2]
    assert "results written to X in the profile's results folder" in glued


# ------------------------------------------------------------------ the text file's rules, on a file of its own

TEXTS = """
claims:
  ch99_rises_{move}:
    claim: Consistency rises from filter {m_lo} to {m_hi} under {move} moves
    protocol: circular padding, offsets U{{-4..4}}²
    paper: "VGG16 +{gain:.2f} pp"
    reproduced: &helps Blurring helps.
    reversed: Blurring hurts under {move} moves.
    not resolved: ~
  ch99_plain:
    claim: A claim
    protocol: a protocol
    reproduced: *helps
    reversed: ~
    not resolved: ~
outcomes:
  gaps_means:
    exact: "Exact every {half} px."
    measured: "Largest differences: {gaps}."
    items:
      gaps: filter {m} {gap:.1e}
"""


@pytest.fixture
def texts(tmp_path, monkeypatch):
    """A text file of its own in place of the book's."""
    path = tmp_path / "claims_text.yaml"
    path.write_text(TEXTS)
    monkeypatch.setattr(prose, "path", lambda: path)
    return path


def test_a_claim_is_filled_from_its_values(texts):
    c = prose.claim("ch99_rises_{move}", {"move": "crop moves", "m_lo": 1, "m_hi": 5, "gain": 0.7})
    assert c == {"key": "ch99_rises_crop_moves", "claim": "Consistency rises from filter 1 to 5 under crop moves moves",
                 "protocol": "circular padding, offsets U{-4..4}²", "paper": "VGG16 +0.70 pp",
                 "means": {"reproduced": "Blurring helps.", "reversed": "Blurring hurts under crop moves moves.",
                           "not resolved": None},
                 "kind": "claim", "primary": False, "margin": None, "expect": "positive"}
    plain = prose.claim("ch99_plain")
    assert plain["paper"] == "" and plain["means"]["reproduced"] == "Blurring helps."
    assert prose.names("claims", "ch99_rises_{move}") == {"move", "m_lo", "m_hi", "gain"}


def test_missing_keys_values_and_outcomes_are_named(texts):
    with pytest.raises(prose.ProseError, match=r"no claim 'ch99_nope' .*; valid: ch99_rises_\{move\}, ch99_plain"):
        prose.claim("ch99_nope")
    with pytest.raises(prose.ProseError, match=r"needs the values \['gain'\]; given: m_hi, m_lo, move"):
        prose.claim("ch99_rises_{move}", {"move": "crop", "m_lo": 1, "m_hi": 5})
    with pytest.raises(prose.ProseError, match=r"uses no value named \['typo'\]"):
        prose.claim("ch99_plain", {"typo": 1})
    with pytest.raises(prose.ProseError, match="has no outcome 'nearly'; valid: exact, measured"):
        prose.outcome("gaps_means", "nearly", {"half": 4})
    with pytest.raises(prose.ProseError, match="no outcome text 'nope'"):
        prose.outcome("nope", "exact")


def test_outcome_variants_and_items(texts):
    values = {"half": 4, "gaps": [{"m": 1, "gap": 0.012}, {"m": 3, "gap": 2e-8}]}
    assert prose.outcome("gaps_means", "exact", values) == "Exact every 4 px."
    assert prose.outcome("gaps_means", "measured", values) == "Largest differences: filter 1 1.2e-02, filter 3 2.0e-08."
    with pytest.raises(prose.ProseError, match="gaps is a list of items"):
        prose.outcome("gaps_means", "measured", {"half": 4, "gaps": 3})


@pytest.mark.parametrize("entry, message", [
    ("  ch99_x:\n    claim: c\n    protocol: p\n    reproduced: r\n    reversed: r\n", r"lacks \['not resolved'\]"),
    ("  ch99_x:\n    claim: c\n    protocol: p\n    reproduced: r\n    reversed: r\n    not resolved: n\n"
     "    means: m\n",
     "unknown fields \\['means'\\]; valid: claim, protocol, paper, items, kind, primary, margin, expect, reproduced, "
     "reversed, not resolved"),
    ("  ch99_x:\n    kind: check\n    claim: c\n    protocol: p\n    reproduced: r\n    passes: p\n    fails: f\n",
     r"unknown fields \['reproduced'\]; valid: .*passes, fails"),
    ("  ch99_x:\n    kind: test\n    claim: c\n    protocol: p\n", "kind 'test' is unknown; valid: claim, check"),
    ("  ch99_x:\n    kind: check\n    primary: true\n    claim: c\n    protocol: p\n    passes: p\n    fails: f\n",
     "primary is a field of a claim, and this entry is a check"),
    ("  ch99_x:\n    margin: -1\n    claim: c\n    protocol: p\n", "margin is a positive number"),
    ("  ch99_x:\n    kind: check\n    expect: zero\n    claim: c\n    protocol: p\n    passes: p\n    fails: f\n",
     "a check that expects zero states its margin"),
    ("  ch99_x:\n    margin: 0.005\n    claim: c\n    protocol: p\n    reproduced: r\n    reversed: r\n"
     "    not resolved: n\n", r"unknown fields \['reproduced', 'reversed'\]; valid: .*equivalent, better, worse, "
                               "not resolved"),
    ("  ch99_x:\n    claim: c {}\n    protocol: p\n    reproduced: r\n    reversed: r\n    not resolved: n\n",
     "placeholders are named values"),
    ("  ch99_x:\n    claim: U{-4..4}\n    protocol: p\n    reproduced: r\n    reversed: r\n    not resolved: n\n",
     "placeholders are named values|not a valid template"),
    ("  ch99_plain:\n    claim: again\n", "the key 'ch99_plain' is given twice"),
])
def test_a_bad_entry_is_refused_by_name(texts, entry, message):
    texts.write_text(TEXTS.replace("outcomes:", entry + "outcomes:"))
    with pytest.raises(prose.ProseError, match=message):
        prose.load()


def test_the_file_is_read_again_when_it_changes(texts):
    assert prose.claim("ch99_plain")["claim"] == "A claim"
    texts.write_text(TEXTS.replace("claim: A claim", "claim: Another claim"))
    os.utime(texts, ns=(10**18, 10**18))             # a modification time of its own, however fast the rewrite
    assert prose.claim("ch99_plain")["claim"] == "Another claim"


def test_the_book_file_is_found_from_the_project_root():
    assert prose.path() == ROOT / "book" / "claims_text.yaml"
    assert prose.load()["claims"] and prose.load()["outcomes"]
