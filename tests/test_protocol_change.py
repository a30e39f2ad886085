"""A claim whose protocol changed: check_findings.py --record keeps the texts each stated verdict was measured under
(book/claims_protocols.yaml), with the replaced record's protocol and verdict under `previous` for one record where
the protocol changed, and the summary chapter's rows (protocol_changes) set the old protocol beside the new one."""
from pathlib import Path

import pytest
import yaml
from conftest import load_script

from shiftlab import findings, prose, results
from shiftlab.findings import REPRODUCED, REVERSED

ROOT = Path(__file__).resolve().parent.parent
BEFORE = """
claims:
  ch07_rises_{net}:
    claim: The {label} net is more consistent with a blur
    protocol: "crops over a black frame, {n} images, U{{-4..4}}²"
    reproduced: ~
    reversed: ~
    not resolved: ~
  ch07_plain:
    claim: A plain claim
    protocol: circular shifts
    reproduced: ~
    reversed: ~
    not resolved: ~
outcomes: {}
"""
AFTER = BEFORE.replace("crops over a black frame", "the window moved over a mosaic")
VALUES = {"net": "vgg", "label": "VGG-like", "n": 500}


@pytest.fixture(scope="module")
def check_findings():
    return load_script("check_findings")


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A text file of the tests' own in place of the book's; book.texts(text) replaces it (a new file each time, so
    prose reads it again), book.run(sign) writes a run's results, book.record() states its verdicts."""
    class Book:
        claims = tmp_path / "claims.yaml"
        protocols = tmp_path / "claims_protocols.yaml"
        folder = tmp_path / "results"
        version = 0

        def texts(self, text: str) -> None:
            Book.version += 1
            path = tmp_path / f"claims_text_{Book.version}.yaml"
            path.write_text(text)
            monkeypatch.setattr(prose, "path", lambda: path)

        def run(self, sign: float) -> list:
            found = [findings.by_seed("ch07_rises_{net}", [sign * 0.1, sign * 0.2, sign * 0.15], **VALUES),
                     findings.by_seed("ch07_plain", [0.1, 0.2, 0.15])]
            results.save(self.folder, "07_consistency", "smoke", {"seed": 0}, {"verdicts": findings.save_all(found)})
            return findings.load_all(self.folder)

        def record(self, check_findings) -> dict:
            code = check_findings.main(["--profile", "smoke", "--results", str(self.folder), "--claims",
                                        str(self.claims), "--replication", str(tmp_path / "none.yaml"), "--record"])
            assert code == 0
            return yaml.safe_load(self.protocols.read_text())

    b = Book()
    b.texts(BEFORE)
    return b


def test_keys_map_to_their_entries_and_templates_give_back_their_values(check_findings):
    entries = prose.load(ROOT / "book" / "claims_text.yaml")["claims"]
    assert check_findings.entry_of("ch01_shrink_vgg", entries) == "ch01_shrink_{net}"
    assert check_findings.entry_of("ch08_gaussian_noise_error_falls", entries) == "ch08_{corruption}_error_falls"
    assert check_findings.entry_of("ch08_mce_falls", entries) == "ch08_mce_falls"          # itself, not a template
    assert check_findings.entry_of("ch99_renamed", entries) is None
    template = "mean over {s_small}-{s_big} px, U{{-4..4}}², {gap:.1f} pp"
    assert check_findings.template_values(template, "mean over 14-28 px, U{-4..4}², 1.5 pp") == \
        {"s_small": "14", "s_big": "28", "gap": "1.5"}
    assert check_findings.template_values(template, "black canvas") is None
    assert check_findings.template_values("crops, U{{-4..4}}²", "crops, U{-4..4}²") == {}
    assert check_findings.readable(template, {"s_small": "14"}) == "mean over 14-… px, U{-4..4}², … pp"


def test_record_keeps_the_previous_protocol_for_one_record(book, check_findings):
    first = book.run(+1)
    record = book.record(check_findings)            # the first record: the texts, no previous
    assert record == {"ch07_rises_vgg": {"entry": "ch07_rises_{net}",
                                         "claim": "The {label} net is more consistent with a blur",
                                         "protocol": "crops over a black frame, {n} images, U{{-4..4}}²"},
                      "ch07_plain": {"claim": "A plain claim", "protocol": "circular shifts"}}
    assert book.protocols.read_text().startswith("# The claim and protocol texts")
    stated = yaml.safe_load(book.claims.read_text())
    assert stated == {"ch07_rises_vgg": REPRODUCED, "ch07_plain": REPRODUCED}
    assert check_findings.protocol_changes(first, record, stated) == []

    book.texts(AFTER)                                # the protocol is redesigned; the run is still the old one
    pending = {"ch.": 7, "claim": "The VGG-like net is more consistent with a blur",
               "protocol before": "crops over a black frame, 500 images, U{-4..4}²", "book stated": REPRODUCED,
               "protocol now": "the window moved over a mosaic, 500 images, U{-4..4}²", "this run": "–",
               "book states": "–"}
    assert check_findings.protocol_changes(first, record, stated) == [pending]
    stale = check_findings.record_protocols(first, prose.load()["claims"], record, stated)
    assert stale == record                           # recorded as the old run measured it: nothing changed yet

    second = book.run(-1)                            # the new protocol reverses the claim, not yet recorded
    assert check_findings.protocol_changes(second, record, stated) == [{**pending, "this run": REVERSED}]

    record = book.record(check_findings)             # recorded under the new protocol: old and new side by side
    assert record["ch07_rises_vgg"] == {
        "entry": "ch07_rises_{net}", "claim": "The {label} net is more consistent with a blur",
        "protocol": "the window moved over a mosaic, {n} images, U{{-4..4}}²",
        "previous": {"claim": "The {label} net is more consistent with a blur",
                     "protocol": "crops over a black frame, {n} images, U{{-4..4}}²", "stated": REPRODUCED}}
    assert "previous" not in record["ch07_plain"]   # its protocol did not change
    stated = yaml.safe_load(book.claims.read_text())
    assert stated["ch07_rises_vgg"] == REVERSED
    assert check_findings.protocol_changes(second, record, stated) == [{**pending, "this run": REVERSED,
                                                                         "book states": REVERSED}]

    record = book.record(check_findings)             # a later record, same protocol: only the new one
    assert "previous" not in record["ch07_rises_vgg"]
    assert record["ch07_rises_vgg"]["protocol"] == "the window moved over a mosaic, {n} images, U{{-4..4}}²"
    assert check_findings.protocol_changes(second, record, yaml.safe_load(book.claims.read_text())) == []


def test_a_finding_without_a_recorded_protocol_has_no_row(book, check_findings):
    measured = book.run(+1)
    record = {"ch07_plain": {"claim": "A plain claim", "protocol": "circular shifts"}}   # rises_vgg: new, or renamed
    book.texts(AFTER.replace("protocol: circular shifts", "protocol: circular shifts by whole pixels"))
    rows = check_findings.protocol_changes(measured, record, {"ch07_plain": REPRODUCED})
    assert [(r["claim"], r["protocol before"], r["protocol now"], r["this run"]) for r in rows] == \
        [("A plain claim", "circular shifts", "circular shifts by whole pixels", "–")]
    texts = check_findings.record_protocols(measured, prose.load()["claims"], record, {})
    assert "previous" not in texts["ch07_rises_vgg"]


def test_the_book_records_the_texts_of_every_stated_verdict():
    """book/claims_protocols.yaml holds a claim and a protocol for every verdict book/claims.yaml states, and each
    previous block the verdict stated under it."""
    stated = yaml.safe_load((ROOT / "book" / "claims.yaml").read_text())
    record = yaml.safe_load((ROOT / "book" / "claims_protocols.yaml").read_text())
    assert list(record) == list(stated)
    for key, doc in record.items():
        assert isinstance(doc["claim"], str) and isinstance(doc["protocol"], str), key
        assert set(doc) <= {"entry", "claim", "protocol", "previous"}, key
        if "previous" in doc:
            assert doc["previous"]["stated"] in (*findings.CLAIM_VERDICTS, *findings.CHECK_VERDICTS), key
