"""The plan: every model a profile will ask for, listed before anything trains, exactly as the run then uses them."""
import os
import sys
from pathlib import Path

from shiftlab import weights

ROOT = Path(__file__).resolve().parent.parent


def test_plan_lists_exactly_the_models_the_smoke_run_used(smoke_run, smoke_plan):
    planned = smoke_plan
    used = weights.used_models(smoke_run / "results" / "smoke")
    assert {m["key"] for m in planned} == set(used)
    assert all(m["config"]["name"] == m["name"] and m["config"]["train"]["seed"] == m["seed"] for m in planned)
    assert not list((smoke_run / "results" / "smoke").glob("plan*")), "a plan writes nothing into the results"


def _notebook(path: Path, *cells: tuple[str, list[str]]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    nbformat.write(nb, path)
    return path


def test_a_plan_runs_the_cells_with_the_profiles_parameters_until_the_first_model(driver, tmp_path, monkeypatch,
                                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    main = sys.modules["__main__"]
    reached = _notebook(tmp_path / "reached.ipynb", ("width = 1", ["parameters"]),
                        ("print('a figure'); assert width == 3", []),
                        ("import sys, types\nsys.modules['__main__'] = types.ModuleType('rebound')", []),
                        ("from shiftlab.chapter import PlanComplete\nraise PlanComplete('reached')", []),
                        ("raise AssertionError('a cell after the first model ran')", []))
    assert driver._plan_one(reached, {"width": 3}, str(tmp_path)) is None
    assert capsys.readouterr().out == "", "what the cells print is not the plan's output"
    assert sys.modules["__main__"] is main, "a pool worker finds its next task in __main__"
    failing = _notebook(tmp_path / "failing.ipynb", ("width = 1", ["parameters"]), ("1 / 0", []))
    assert driver._plan_one(failing, {}, str(tmp_path)) == (
        "failing.ipynb failed before its first model in code cell 2 (ZeroDivisionError: division by zero)")
    assert "SHIFTLAB_PLAN" not in os.environ
