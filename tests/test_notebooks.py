"""Notebook hygiene, the papermill driver's errors, and a smoke run of every notebook."""
import ast
import json
import re
from types import SimpleNamespace

import nbformat
import papermill as pm
import pytest
import yaml
from conftest import load_script

from shiftlab import findings, params, results

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_stripped_and_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(c.outputs or c.execution_count for c in code), "outputs must be stripped"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert nb.metadata["kernelspec"]["name"] == "shiftlab"


@pytest.mark.parametrize("profile", ["smoke", "book", "paper"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_profile_keys_exist_in_parameters_cell(path, profile):
    declared = set(pm.inspect_notebook(str(path)))
    given = set(params.notebook_parameters(params.load_profile(profile, ROOT / "params"), path.stem))
    injected = {"results_dir", "fig_dir", "cache_dir"}
    assert given | injected <= declared, f"not in the parameters cell: {sorted(given | injected - declared)}"


def test_driver_rejects_unknown_parameter_before_running(refused):
    code, err = refused("--profile", "smoke", "--only", "00_background", "-p", "n_evl=5", "--out", "/nonexistent/x")
    assert code == 2
    assert "unknown parameter 'n_evl'" in err and err.count("\n") == 1


def test_driver_rejects_invalid_value_and_unknown_notebook(refused):
    code, err = refused("--profile", "smoke", "-p", "n_eval=-3")
    assert code == 2 and "n_eval=-3 is invalid; valid: an integer >= 1" in err
    code, err = refused("--profile", "smoke", "--only", "99_nothing")
    assert code != 0 and "valid: 00_background" in err


def test_smoke_run_hides_injected_cells_and_has_no_errors(smoke_run):
    for path in NOTEBOOKS:
        nb = nbformat.read(smoke_run / "book" / "executed" / path.name, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and all("remove-cell" in c.metadata["tags"] for c in injected)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
        assert len(images) >= 2, f"{path.stem}: a chapter shows its results in figures"


def test_background_results_hold_the_claims(smoke_run):
    doc = results.load(smoke_run / "results" / "smoke" / "00_background.json")
    m = doc["metrics"]
    assert doc["profile"] == "smoke" and doc["params"]["n_train"] == 5000
    assert m["conv_equivariance_max_error"]["circular"] < 1e-5 < 1e-3 < m["conv_equivariance_max_error"]["zeros"]
    heads = m["head_max_change"]
    assert heads["global average pool + linear"] < 1e-5 < 0.1 < heads["flatten + fully connected"]
    assert m["maxpool_change_at_1px"]["32"] < 1e-6 < m["maxpool_change_at_1px"]["8"] < m["maxpool_change_at_1px"]["2"]
    errs = m["strided_1d_error"]
    for stride, by_shift in errs.items():
        for shift, err in by_shift.items():
            assert (err < 1e-5) == (int(shift) % int(stride) == 0), (stride, shift, err)
    net = m["network"]
    assert net["total_stride"] == 8 and net["invariant_exactly_on_lattice"]
    assert net["fraction_invariant_shifts"] == pytest.approx(1 / 64)
    assert net["periodicity_max_deviation"] < 1e-5 and net["mean_logit_change_off_lattice"] > 1e-3
    assert {(row["model"], row["seed"]) for row in m["trained"]} == {(n, s) for n in ("baseline", "baseline_aug")
                                                                     for s in (0, 1)}
    for row in m["trained"]:      # one epoch on 5000 images: far above chance (0.1) at every seed, not converged
        assert 0.3 < row["accuracy"] <= 1 and 0 < row["consistency (crop)"] <= 1, row
    doc = json.loads((smoke_run / "results" / "smoke" / "00_background.json").read_text())
    assert doc["timings"]["notebook_seconds"] > 0
    assert (smoke_run / "results" / "smoke" / "figures" / "background_network_shift_grid.png").stat().st_size > 10_000


def _metrics(smoke_run, notebook):
    doc = results.load(smoke_run / "results" / "smoke" / f"{notebook}.json")
    assert doc["profile"] == "smoke" and doc["notebook"] == notebook
    return doc["metrics"]


def test_exact_claims_hold_in_every_chapter(smoke_run):
    """What the theory makes exact holds exactly even on the smoke profile's tiny models."""
    why = _metrics(smoke_run, "02_why_subsampling")["periodicity"]
    assert why["max_change_on_lattice"] < 1e-5 < why["min_change_off_lattice"]
    assert why["fraction_invariant"] == pytest.approx(1 / why["total_stride"] ** 2)
    blur = _metrics(smoke_run, "05_blurpool")
    assert all(err < 1e-6 for err in blur["decomposition_max_abs_error"].values())
    internal = _metrics(smoke_run, "06_internal_equivariance")
    assert internal["max_on_lattice"] < 1e-5 and internal["periodicity_max_deviation"] < 1e-5
    aps = _metrics(smoke_run, "09_aps")
    exact = ("APS", "APS-LPF", "conv-APS")
    assert all(r["max relative logit change"] < 1e-5 for r in aps["untrained"] if r["network"] in exact)
    assert all(r["max relative logit change"] > 1e-3 for r in aps["untrained"] if r["network"] not in exact)
    trained = [r for r in aps["runs"] if r["network"] in ("APS", "APS-LPF")]
    assert len(trained) == 4 and all(r["consistency (circular)"] == 1.0 for r in trained)
    assert all(r["consistency (crop)"] < 1.0 for r in trained), "crop shifts are not circular: APS is not exact there"
    rotations = _metrics(smoke_run, "12_rotations")["curves"]
    c8_at_90 = [r for r in rotations if r["network"] == "C8 CNN" and r["angle (°)"] % 90 == 0]
    assert len(c8_at_90) == 5 * 2                        # 0°, 90°, ..., 360° for each of the smoke profile's 2 seeds
    assert all(r["max relative logit change"] < 1e-5 and r["P(top-1 change) vs 0°"] == 0 for r in c8_at_90)
    sliding = {r["network"]: r for r in _metrics(smoke_run, "14_sliding_windows")["equality"]}
    gap = "max |logit difference|"
    assert sliding["no padding"][gap] < 1e-5 < sliding["circular padding"][gap]
    worst = [r for r in _metrics(smoke_run, "10_fractional_worst_case")["runs"] if r["network"] in ("APS", "APS-LPF")]
    assert len(worst) == 4
    assert all(r["adversary's gain"] == 0 and r["integer-shift change (t = 1 px)"] == 0 for r in worst)


def test_every_chapter_reports_its_measurements(smoke_run):
    one = _metrics(smoke_run, "01_one_pixel")
    networks = {"VGG-like", "VGG-like + random crops", "VGG-like, MaxBlurPool 5", "ResNet-like"}
    assert {row["network"] for row in one["table"]} == networks
    pairs = {(row["network"], row["protocol"]) for row in one["table"]}
    protocols = ("crop", "black", "grey", "mosaic")
    assert pairs == {(n, p) for n in networks for p in protocols}       # one input size, every protocol
    assert all(0 <= row["P(top-1 change)"] <= 1 and 0 <= row["MAC"] <= 1 for row in one["table"])
    bias = _metrics(smoke_run, "03_photographers_bias")
    assert set(bias["summary"]) == {"centred", "centred + jitter (σ = 3 px)", "anywhere (uniform)",
                                    "centred + jitter, global pooling"}
    scale = _metrics(smoke_run, "04_scale")
    assert {r["size (px)"] for r in scale["sizes"]} == {12, 13, 20, 21, 28, 29, 34, 35}
    runs = _metrics(smoke_run, "07_consistency_vs_filter")["runs"]
    arms = {(r["filter size"], r["padding"], r["augmentation"]) for r in runs}
    assert arms == {(1, "circular", "none"), (3, "circular", "none"), (1, "zeros", "none"), (3, "zeros", "none"),
                    (1, "circular", "crops")}
    assert len(runs) == len(arms) * 2 and all(0 <= r["consistency (crop)"] <= 1 for r in runs)
    flips = _metrics(smoke_run, "08_robustness")["flip_rate"]
    assert len(flips) == 3 * 2 * 2 and all(0 <= r["flip rate"] <= 1 for r in flips)
    fractional = _metrics(smoke_run, "10_fractional_worst_case")["fractional"]
    assert {r["network"] for r in fractional} == {"MaxPool", "MaxBlurPool-3", "APS", "APS-LPF"}
    assert all(r["P(top-1 change)"] == 0 for r in fractional if r["shift t (px)"] == 0)
    stn = _metrics(smoke_run, "13_spatial_transformer")["table"]
    assert [r["network"] for r in stn] == ["plain", "anti-aliased", "spatial transformer"]
    assert all(0 <= r[k] <= 1 for r in stn for k in ("accuracy", "flips"))
    assert len(_metrics(smoke_run, "13_spatial_transformer")["stn_slopes"]) == 2
    padding = _metrics(smoke_run, "11_padding_position")["runs"]
    assert list(dict.fromkeys(r["padding"] for r in padding)) == ["circular", "zeros", "reflect"]
    assert len(padding) == 3 * 2
    assert all(0 <= r["probe accuracy (held-out)"] <= 1 for r in padding)


def _parameters_cell(path) -> dict:
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse(cell.source).body}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_defaults_equal_the_book_profile(path):
    """Run by hand (JupyterLab), a chapter computes what the site shows."""
    book = params.notebook_parameters(params.load_profile("book", ROOT / "params"), path.stem)
    defaults = _parameters_cell(path)
    differ = {k: (defaults[k], v) for k, v in book.items() if k in defaults and defaults[k] != v}
    assert not differ, f"parameters cell (default, book profile): {differ}"


TYPED_CONCLUSIONS = ("buys consistency", "curves are flatter", "closer to equivariant", "darkens the rest",
                     "at every size", "follows the same pattern", "regenerate it", "worse on a uniform background",
                     "the mean curve is smooth", "restores much of", "reduces it", "unlike Zhang",
                     "is more robust", "does not buy")


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.stem)
def test_no_typed_conclusions(path):
    """Conclusions are glued from verdicts, never typed: the phrases a reviewer found typed stay out of the prose."""
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    found = [p for p in TYPED_CONCLUSIONS if p.lower() in text.lower()]
    assert not found, f"typed conclusions in the prose: {found}"


@pytest.mark.parametrize("path", [*NOTEBOOKS, *sorted((ROOT / "book").glob("*.md"))], ids=lambda p: p.stem)
def test_prose_cites_only_chapters_that_exist(path):
    """'chapter N' in the prose names a notebook of the book (chapter 0 once cited a chapter 11 that did not exist)."""
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    existing = {int(nb.stem[:2]) for nb in NOTEBOOKS}
    cited = {int(n) for n in re.findall(r"\bchapters? (\d{1,2})\b", text, flags=re.IGNORECASE)}
    assert cited <= existing, f"{path.name} cites chapters {sorted(cited - existing)} that do not exist"


def test_prose_glues_only_verdicts_that_exist(smoke_run):
    """Every verdict key a chapter's prose glues is measured by that chapter, and every chapter that
    decides claims says what they mean from a glued verdict."""
    deciding = [p for p in NOTEBOOKS if p.stem.split("_")[0] not in ("00", "99")]
    for path in deciding:
        doc = results.load(smoke_run / "results" / "smoke" / f"{path.stem}.json")
        keys = {v["key"] for v in doc["metrics"].get("verdicts", [])}
        assert keys, f"{path.stem} records no verdicts"
        markdown = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        glued = {re.sub(r"_(verdict|means|budget)$", "", k)
                 for k in re.findall(r"\{glue:text\}`(ch\d\d_[a-z0-9_]+)", markdown)}
        assert glued <= keys, f"{path.stem} glues verdicts it does not measure: {sorted(glued - keys)}"
        meaning = markdown.split("**What it means.**")[-1].split("\n\n")[0] if "**What it means.**" in markdown else ""
        assert "_means`" in meaning or "_verdict`" in meaning, \
            f"{path.stem}: 'What it means' is not glued from a verdict"


def test_summary_and_check_findings_read_every_verdict(smoke_run, tmp_path, capsys):
    folder = smoke_run / "results" / "smoke"
    chapters = [results.load(p) for p in sorted(folder.glob("[0-9][0-9]_*.json")) if not p.stem.startswith("99_")]
    keys = [v["key"] for doc in chapters for v in doc["metrics"].get("verdicts", [])]
    summary = results.load(folder / "99_summary.json")["metrics"]["findings"]
    assert sorted(r["key"] for r in summary) == sorted(keys) and len(set(keys)) == len(keys)
    assert {r["kind"] for r in summary} == {"primary", "exploratory", "check"}

    script = load_script("check_findings")

    def check(*args):
        """scripts/check_findings.py run in this process: its exit code and what it printed."""
        capsys.readouterr()
        code = script.main(["--profile", "smoke", "--results", str(folder), "--replication", str(replication), *args])
        return SimpleNamespace(returncode=code, stdout=capsys.readouterr().out)

    replication = tmp_path / "replication.yaml"
    proc = check()
    assert proc.returncode == 0 and proc.stdout.count("[ch") == len(keys)
    claims = tmp_path / "claims.yaml"
    assert check("--claims", str(claims), "--record").returncode == 0
    assert check("--claims", str(claims)).returncode == 0
    measured = {r["key"]: r["this run"] for r in summary}
    key = next(k for k, v in measured.items() if v in findings.CLAIM_VERDICTS)
    flipped = "reversed" if measured[key] == "reproduced" else "reproduced"
    claims.write_text(claims.read_text().replace(f"{key}: {measured[key]}", f"{key}: {flipped}"))
    proc = check("--claims", str(claims))
    assert proc.returncode == 1 and f"DIFFERS     {key}: stated '{flipped}'" in proc.stdout
    proc = check("--claims", str(claims), "--report")                # make book: the same list, and never fails
    assert proc.returncode == 0 and proc.stdout.strip().endswith("1 verdict(s) differ from " + str(claims))
    # the same run as its own replication agrees everywhere
    assert check("--replicate", str(folder)).returncode == 0
    doc = yaml.safe_load(replication.read_text())
    assert doc["claims"]["agreement"] == doc["checks"]["agreement"] == 1.0
    assert doc["claims"]["compared"] == sum(r["kind"] != "check" for r in summary) > 0
    assert doc["checks"]["compared"] == sum(r["kind"] == "check" for r in summary) > 0
    # a second seed set that decides a claim otherwise: the book states it not resolved, everything else as measured
    doc = yaml.safe_load(replication.read_text())
    doc["verdicts"][key] = flipped
    doc["first_seed"] = 5                                          # as from a disjoint seed set
    replication.write_text(yaml.safe_dump(doc))
    assert check("--claims", str(claims), "--record").returncode == 0
    agreed = yaml.safe_load(claims.read_text())
    assert agreed[key] == findings.UNRESOLVED and {k: v for k, v in agreed.items() if k != key} == \
        {k: v for k, v in measured.items() if k != key}
    assert check("--claims", str(claims)).returncode == 0          # the strict check compares what both sets reach
    replication.unlink()
    proc = check("--claims", str(claims))                          # without the second set: this run's own verdict
    assert proc.returncode == 1 and f"DIFFERS     {key}: stated '{findings.UNRESOLVED}'" in proc.stdout


def test_no_claim_about_training_rests_on_fewer_than_five_seeds(smoke_run):
    """Every claim (not a check) is decided by seed, never by image, and each chapter that decides one takes at least
    5 seeds in the book profile (the smoke profile's 2 keep the tests fast)."""
    book = params.load_profile("book", ROOT / "params")
    for path in sorted((smoke_run / "results" / "smoke").glob("[0-9][0-9]_*.json")):
        doc = results.load(path)
        claims = [v for v in doc["metrics"].get("verdicts", []) if v["kind"] == findings.CLAIM]
        if not claims:
            continue
        otherwise = [v["key"] for v in claims if not v["method"].startswith("by seed")]
        assert not otherwise, f"{path.stem}: claims decided otherwise than by seed: {otherwise}"
        n_seeds = params.notebook_parameters(book, path.stem).get("n_seeds", 1)
        assert n_seeds >= 5, f"{path.stem} decides claims about training over {n_seeds} seed(s) in the book profile"
        assert all(v["n"] == doc["params"]["n_seeds"] for v in claims), path.stem
