#!/usr/bin/env python
"""Run the book's notebooks headless through papermill with a profile's parameters.

    python scripts/run_notebooks.py --profile book [--only 00_background ...] [-p n_eval=50] [--jobs 2]

Each notebook gets the profile's common and own parameters plus profile, seed, device and the
results/figure/cache folders, is written to <out>/<name>.ipynb with the injected cell hidden from
the site, and is timed. While it runs, one live line shows the cell, the elapsed time and the
previous run's time, and every model it trains is printed as it starts and finishes each epoch.
The first failure stops the run with the notebook, the cell and the error, keeps the partial
notebook for inspection, and leaves the chapter's last good page in place. Each notebook's time is
kept in results/<profile>/run_times.json, as cold (it trained a model or computed an evaluation) or warm
(it read everything from the caches), with
the wall time of the last whole run (every notebook), and written as the budget table
<out>/run_times.md that book/reproducing.md shows.

With --jobs N, N notebooks run at once in worker processes, longest first (by the last run here, else by
book/reference_times.json, the reference machine's times, which --record-reference writes), each
with an equal share of the cores (torch threads and training workers); the 99_* notebooks, which
read every chapter's results, run after the rest. A model two notebooks ask for is trained once
(the zoo locks it), and every notebook's results are the same as in a sequential run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import nbformat
import papermill as pm
import yaml
from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine, papermill_engines

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shiftlab.chapter import PLAN_ENV  # noqa: E402
from shiftlab.evalcache import EVAL_EVENT  # noqa: E402
from shiftlab.params import ParameterError, load_profile, notebook_parameters, validate  # noqa: E402
from shiftlab.results import atomic_write_bytes  # noqa: E402
from shiftlab.runtime import CORES_ENV, EVENTS_ENV, cpu_count, large_pages_in_new_processes  # noqa: E402
from shiftlab.zoo import TRAIN_EVENT, USE_EVENT  # noqa: E402

KERNEL = "shiftlab"
REFERENCE_TIMES = ROOT / "book" / "reference_times.json"   # the reference machine's run times (--record-reference)


class IPCKernelManager(AsyncKernelManager):
    """Kernels talk over local IPC sockets instead of TCP: nothing listens on the network, and the
    kernel has no reason to warn about unencrypted TCP. The sockets live in the temporary folder under
    a name of their own, so kernels started side by side never share one (and none litter the project)."""

    def __init__(self, **kwargs):
        prefix = Path(tempfile.gettempdir()) / f"shiftlab-kernel-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        super().__init__(transport="ipc", ip=str(prefix), **kwargs)

    async def _async_interrupt_kernel(self) -> None:
        """Interrupt the kernel, except while shutting it down (jupyter_client interrupts first; the notebook has
        finished, and the kernel would log a KeyboardInterrupt error on the run's output)."""
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


class Progress:
    """What the live line shows: the running notebook's cell index and count (also written to
    `status`, when set, for a driver that runs notebooks in worker processes)."""

    cell = 0
    cells = 0
    status: Path | None = None


class ProgressEngine(NBClientEngine):
    """papermill's nbclient engine, recording which cell is running for the live line."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        Progress.cells, start = len(nb_man.nb.cells), nb_man.cell_start

        def cell_start(cell, cell_index=None, **kw):
            Progress.cell = (cell_index or 0) + 1
            if Progress.status:
                Progress.status.write_text(f"{Progress.cell}/{Progress.cells}")
            return start(cell, cell_index, **kw)

        nb_man.cell_start = cell_start
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register("shiftlab", ProgressEngine)


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


def parameters_for(nb: Path, profile: dict, out_root: Path, overrides: dict, declared: set[str]) -> dict:
    """The values injected into one notebook: the profile's (every key must be in `declared`, the names its
    parameters cell defines), then each -p override it declares (``check_overrides`` makes sure some notebook does)."""
    results_dir = out_root / "results" / profile["common"]["profile"]
    values = {
        **notebook_parameters(profile, nb.stem),
        "results_dir": str(results_dir),
        "fig_dir": str(results_dir / "figures"),
        "cache_dir": str(out_root / "results" / "cache"),
    }
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ParameterError(f"{nb.name} has no parameter(s) {unknown}; its parameters: {', '.join(sorted(declared))}")
    values.update({k: v for k, v in overrides.items() if k in declared})
    validate(**values)
    return values


def declared_parameters(nb: Path) -> set[str]:
    """The names a notebook's parameters cell defines."""
    return set(pm.inspect_notebook(str(nb)))


def check_overrides(declared: dict[Path, set[str]], overrides: dict) -> None:
    """Every -p override must be a valid value of a parameter at least one of the notebooks run declares
    (a notebook that does not declare it runs without it, e.g. imagenet_val in chapters 1 and 7 only)."""
    validate(**overrides)
    names = set().union(*declared.values())
    unused = sorted(set(overrides) - names)
    if unused:
        raise ParameterError(f"no notebook of this run has the parameter(s) {unused}; "
                             f"their parameters: {', '.join(sorted(names))}")


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


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def _watch(label: str, events: Path, previous: float | None, done: threading.Event, live: bool) -> None:
    """Print each event line as it arrives and, when live (a terminal), one status line for the notebook."""
    start, offset = time.perf_counter(), 0
    estimate = f" (last run {_clock(previous)})" if previous else ""
    while not done.wait(1.0) or events.exists() and events.stat().st_size > offset:
        if events.exists():
            with events.open(encoding="utf-8") as f:
                f.seek(offset)
                lines = f.read().splitlines()
                offset = f.tell()
            for line in lines:
                if not line.startswith((f"{USE_EVENT} ", f"{EVAL_EVENT} ")):   # logged, not shown
                    print(("\r\033[K" if live else "") + f"    {label}: {line}", flush=True)
        if live and not done.is_set():
            print(f"\r\033[K{label} cell {Progress.cell}/{Progress.cells}, "
                  f"{_clock(time.perf_counter() - start)}{estimate}", end="", flush=True)
    if live:
        print("\r\033[K", end="", flush=True)


def execute(nb: Path, out: Path, values: dict) -> None:
    """papermill: the notebook with these parameters, on the shiftlab kernel, from the project root, into out."""
    pm.execute_notebook(str(nb), str(out), parameters=values, kernel_name=KERNEL, cwd=str(ROOT), progress_bar=False,
                        log_output=False, engine_name="shiftlab", kernel_manager_class=IPCKernelManager)


def run(nb: Path, out: Path, values: dict, events: Path, label: str, previous: float | None,
        live: bool = True) -> tuple[float, bool]:
    """Execute one notebook into out; return its wall time in seconds and whether it ran cold (trained a model
    or computed an evaluation).
    The new page replaces the old one only when the whole notebook ran, so a killed or failed run keeps
    the chapter's last good page and never leaves one that mixes old and new results."""
    start = time.perf_counter()
    partial = partial_path(out)
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_text("")
    os.environ[EVENTS_ENV] = str(events)
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(label, events, previous, done, live and sys.stdout.isatty()),
                               daemon=True)
    watcher.start()
    try:
        execute(nb, partial, values)
    finally:
        done.set()
        watcher.join()
        os.environ.pop(EVENTS_ENV, None)
    hide_injected(partial)
    os.replace(partial, out)
    return time.perf_counter() - start, ran_cold(events.read_text())


def ran_cold(events: str) -> bool:
    """Whether a notebook's event log shows it computing: a model trained or an evaluation not read from the cache."""
    return any(line.startswith((f"{TRAIN_EVENT} ", f"{EVAL_EVENT} ")) for line in events.splitlines())


def run_in_worker(nb: Path, out: Path, values: dict, events: Path, label: str, cores: int,
                  gpu: str | None = None) -> tuple[float, bool]:
    """run() in a worker process with its share of the cores and, when given, its own GPU (the kernel sees only
    that one, as cuda:0); the cell it is at goes to <events>.cell."""
    os.environ[CORES_ENV] = str(cores)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    Progress.status = events.with_suffix(".cell")
    return run(nb, out, values, events, label, None, live=False)


def visible_gpus(spec: str) -> list[str]:
    """The GPU ids to spread parallel notebooks over: 'none', a comma-separated list ('0,1'), or 'auto' (those in
    $CUDA_VISIBLE_DEVICES, else every GPU torch sees; none on a machine without one)."""
    if spec == "none":
        return []
    if spec != "auto":
        ids = [g.strip() for g in spec.split(",")]
        if not all(g.isdigit() for g in ids):
            raise ParameterError(f"--gpus {spec!r} is invalid; valid: 'auto', 'none', or ids such as 0,1")
        return ids
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_for_slot(slot: int, gpus: list[str]) -> str | None:
    """The GPU of the slot-th notebook running at once: one GPU per slot, shared round-robin when slots outnumber
    GPUs."""
    return gpus[slot % len(gpus)] if gpus else None


def _last_time(times: dict, name: str) -> float | None:
    """The notebook's time in the last run that recorded it (cold first), or None."""
    last = times.get(name, {})
    return last.get("cold") or last.get("warm")


def _expected_time(times: dict, reference: dict, name: str) -> float:
    """How long the notebook is expected to take: its last time here, else the reference machine's, else 0."""
    return _last_time(times, name) or _last_time(reference, name) or 0.0


def _status_line(running: dict, times: dict) -> str:
    """One line for the notebooks running in workers: name, cell, elapsed, last run's time."""
    parts = []
    for nb, (events, started) in running.items():
        status = events.with_suffix(".cell")
        cell = status.read_text() if status.exists() else "0/?"
        last = _last_time(times, nb.stem)
        parts.append(f"{nb.stem} cell {cell} {_clock(time.perf_counter() - started)}"
                     + (f" (last {_clock(last)})" if last else ""))
    return " | ".join(parts)


RUNS = "whole run"   # the key of the whole-run wall times in run_times.json


def load_times(path: Path) -> dict:
    """{notebook: {"cold": s, "warm": s}, "whole run": {"cold": {...}, "warm": {...}}} from earlier runs
    (empty when absent or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_times(path: Path, times: dict, table: Path) -> None:
    """Write the run times JSON and the budget table (markdown) that book/reproducing.md includes."""
    atomic_write_bytes(path, (json.dumps(times, indent=2, sort_keys=True) + "\n").encode())
    rows = ["| chapter | cold: trains and evaluates (min:s) | warm: all cached (min:s) |", "| --- | --- | --- |"]
    total = {"cold": 0.0, "warm": 0.0}
    for name in sorted(k for k in times if k != RUNS):
        cells = []
        for kind in ("cold", "warm"):
            seconds = times[name].get(kind)
            if kind == "cold" and seconds is None and "warm" in times[name]:   # nothing of its own to compute
                total[kind] += times[name]["warm"]
                cells.append("as warm")
                continue
            total[kind] += seconds or 0.0
            cells.append(_clock(seconds) if seconds is not None else "not run yet")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    rows.append(f"| **all notebooks, sum** | **{_clock(total['cold'])}** | **{_clock(total['warm'])}** |")
    runs = times.get(RUNS, {})
    if runs:
        cells = [f"**{_clock(r['seconds'])}** ({r['notebooks']} notebooks, {r['jobs']} at a time)"
                 if (r := runs.get(kind)) else "not run yet" for kind in ("cold", "warm")]
        rows.append(f"| **whole run, wall clock** | {cells[0]} | {cells[1]} |")
    atomic_write_bytes(table, ("\n".join(rows) + "\n").encode())


def _record_run(times: dict, seconds: float, n: int, jobs: int, cold: bool, times_path: Path, out_dir: Path) -> None:
    """Keep a whole run's wall time (cold if any notebook ran cold), when it ran every notebook."""
    if n == len(discover(None)):
        times.setdefault(RUNS, {})["cold" if cold else "warm"] = {"seconds": round(seconds, 1), "notebooks": n,
                                                                  "jobs": jobs}
        save_times(times_path, times, out_dir / "run_times.md")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--profile", default="book", help="a name in params/ (smoke, book) or a YAML path")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (e.g. 00_background)")
    ap.add_argument("--out", default=str(ROOT / "book" / "executed"), help="folder for executed notebooks")
    ap.add_argument("--root", default=str(ROOT), help="folder that holds results/ (results, figures, cache)")
    ap.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override one parameter for every notebook run")
    ap.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="run N notebooks at once, each on its share of the cores (default 1)")
    ap.add_argument("--record-reference", action="store_true",
                    help="run nothing: write the profile's last run times (results/<profile>/run_times.json) to "
                         "--reference and its .md table, the reference machine's budget")
    ap.add_argument("--reference", default=str(REFERENCE_TIMES), metavar="JSON",
                    help="the reference machine's run times: the order of notebooks with no time here yet")
    ap.add_argument("--gpus", default="auto", metavar="IDS",
                    help="with --jobs: give each running notebook its own GPU from IDS (e.g. 0,1), 'none', "
                         "or 'auto': $CUDA_VISIBLE_DEVICES, else every GPU found")
    ap.add_argument("--plan", action="store_true",
                    help="train and run nothing: list every model (zoo name, seed, cache key) the notebooks would "
                         "ask for with this profile and these parameters")
    ap.add_argument("--json", action="store_true", help="with --plan: the list as JSON, full configurations included")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        print(f"error: --jobs {args.jobs} is invalid; valid: a whole number >= 1", file=sys.stderr)
        return 2
    try:
        profile = load_profile(args.profile, ROOT / "params")
        notebooks = discover(args.only)
        overrides = parse_overrides(args.overrides)
        gpus = visible_gpus(args.gpus)
        declared = {nb: declared_parameters(nb) for nb in notebooks}
        check_overrides(declared, overrides)
        root = Path(args.root).resolve()
        jobs = [(nb, parameters_for(nb, profile, root, overrides, declared[nb])) for nb in notebooks]
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results_dir = Path(jobs[0][1]["results_dir"]) if jobs else out_dir
    times_path = results_dir / "run_times.json"
    times = load_times(times_path)
    if args.record_reference:
        return record_reference(times, times_path, Path(args.reference))
    if args.plan:
        return plan(jobs, args.json, args.jobs)
    with large_pages_in_new_processes():   # the notebook kernels, which train and evaluate
        if args.jobs == 1:
            return run_sequential(jobs, out_dir, results_dir, times, times_path)
        return run_parallel(jobs, out_dir, results_dir, times, times_path, args.jobs, gpus,
                            load_times(Path(args.reference)))


def _plan_one(nb: Path, values: dict, tmp: str) -> str | None:
    """Run one notebook's code cells in plan mode in this process, with papermill's parameters applied after its
    parameters cell, until its first model (its models listed in <tmp>/<name>.jsonl); an error message, or None.
    In-process, so the workers of one plan import torch and the package once rather than once per notebook; what
    the cells print or display is dropped."""
    from IPython.display import display

    from shiftlab.chapter import PlanComplete

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(ROOT)
    namespace = {"__name__": "__main__", "display": display}
    values = {**values, "results_dir": tmp, "fig_dir": tmp}
    code = [c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code"]
    main = sys.modules["__main__"]
    os.environ[PLAN_ENV] = str(Path(tmp) / f"{nb.stem}.jsonl")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for number, cell in enumerate(code, 1):
                exec(compile(cell.source, f"{nb.name}, code cell {number}", "exec"), namespace)
                if "parameters" in cell.metadata.get("tags", []):
                    namespace.update(values)
    except PlanComplete:
        return None
    except Exception as err:  # noqa: BLE001 - any error of the notebook's code is the plan's to report
        return f"{nb.name} failed before its first model in code cell {number} ({type(err).__name__}: {err})"
    finally:
        if "matplotlib.pyplot" in sys.modules:       # the figures the cells drew, not kept for the next notebook
            sys.modules["matplotlib.pyplot"].close("all")
        sys.modules["__main__"] = main     # running the cells rebinds it; a pool worker finds its next task there
        os.environ.pop(PLAN_ENV, None)
    return None


def plan(jobs: list, as_json: bool, n: int = 1) -> int:
    """Run each notebook that prepares models until its first model (``chapter.PLAN_ENV``), n at a time, collect
    what it prepared, and print every model once (name, seed, key, the notebooks that use it), as a table or JSON."""
    found: dict[str, dict] = {}
    todo = [(nb, values) for nb, values in jobs if "run.prepare(" in nb.read_text()]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"[plan] {len(todo)} notebook(s), {n} at a time ...", file=sys.stderr, flush=True)
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = pool.map(_plan_one, [nb for nb, _ in todo], [v for _, v in todo], [tmp] * len(todo))
            errors = [e for e in outcomes if e]
        if errors:
            print(f"error: {errors[0]}", file=sys.stderr)
            return 1
        for listing in sorted(Path(tmp).glob("*.jsonl")):
            for line in listing.read_text().splitlines():
                entry = json.loads(line)
                notebook = entry.pop("notebook")
                found.setdefault(entry["key"], {**entry, "notebooks": []})["notebooks"].append(notebook)
    models = sorted(found.values(), key=lambda e: (e["name"], e["seed"]))
    for m in models:
        m["notebooks"] = sorted(set(m["notebooks"]))
    if as_json:
        print(json.dumps(models, indent=1))
    else:
        for m in models:
            print(f"{m['name']:<22} seed {m['seed']:<3} {m['key']}  {', '.join(m['notebooks'])}")
        print(f"{len(models)} model(s)")
    return 0


def record_reference(times: dict, times_path: Path, reference: Path) -> int:
    """Write the last run's times as the reference machine's (reference, and its table beside it as .md)."""
    if not times:
        print(f"error: no run times to record: {times_path} is missing; run the notebooks first", file=sys.stderr)
        return 2
    save_times(reference, times, reference.with_suffix(".md"))
    print(f"recorded {times_path} as {reference} and {reference.with_suffix('.md').name}")
    return 0


def _record(times: dict, nb: Path, seconds: float, cold: bool, times_path: Path, out_dir: Path, label: str) -> None:
    times.setdefault(nb.stem, {})["cold" if cold else "warm"] = round(seconds, 1)
    save_times(times_path, times, out_dir / "run_times.md")
    print(f"{label} done in {seconds:.1f} s ({'cold: trained models or evaluated' if cold else 'warm: all cached'})",
          flush=True)


def _failed(nb: Path, out: Path, err: pm.PapermillExecutionError) -> int:
    print(f"error: {nb.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}).\n"
          f"The partial notebook is at {partial_path(out)}; the last good page is kept.", file=sys.stderr)
    return 1


def run_sequential(jobs: list, out_dir: Path, results_dir: Path, times: dict, times_path: Path) -> int:
    """One notebook after the other, in this process, with a live line for each."""
    started, any_cold = time.perf_counter(), False
    for nb, values in jobs:
        out, label = out_dir / nb.name, f"[{values['profile']}] {nb.stem}"
        print(f"{label} ...", flush=True)
        try:
            seconds, cold = run(nb, out, values, results_dir / "events.log", label, _last_time(times, nb.stem))
        except pm.PapermillExecutionError as err:
            return _failed(nb, out, err)
        any_cold |= cold
        _record(times, nb, seconds, cold, times_path, out_dir, label)
    wall = time.perf_counter() - started
    _record_run(times, wall, len(jobs), 1, any_cold, times_path, out_dir)
    print(f"all {len(jobs)} notebook(s) done in {wall:.1f} s")
    return 0


def run_parallel(jobs: list, out_dir: Path, results_dir: Path, times: dict, times_path: Path, n: int,
                 gpus: list[str] | None = None, reference: dict | None = None) -> int:
    """n notebooks at a time in worker processes, longest first, the 99_* ones after the rest; each running
    notebook on its own GPU when there are GPUs."""
    started, any_cold = time.perf_counter(), False
    waves = [sorted([j for j in jobs if not j[0].stem.startswith("99_")],
                    key=lambda j: -_expected_time(times, reference or {}, j[0].stem)),
             [j for j in jobs if j[0].stem.startswith("99_")]]
    cores = max(1, cpu_count() // n)
    live = sys.stdout.isatty()
    gpus, free = gpus or [], list(range(n))
    print(f"running {len(jobs)} notebook(s), {n} at a time, {cores} core(s) each"
          + (f", on GPU(s) {','.join(gpus)}" if gpus else ""), flush=True)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
        for wave in waves:
            pending, running, futures = list(wave), {}, {}
            while pending or futures:
                while pending and len(futures) < n:
                    nb, values = pending.pop(0)
                    events = results_dir / f"events-{nb.stem}.log"
                    label, slot = f"[{values['profile']}] {nb.stem}", free.pop(0)
                    gpu = gpu_for_slot(slot, gpus)
                    print(("\r\033[K" if live else "") + f"{label} ..." + (f" (GPU {gpu})" if gpu else ""), flush=True)
                    future = pool.submit(run_in_worker, nb, out_dir / nb.name, values, events, label, cores, gpu)
                    futures[future] = nb, label, slot
                    running[nb] = events, time.perf_counter()
                done, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    nb, label, slot = futures.pop(future)
                    running.pop(nb)
                    free.append(slot)
                    try:
                        seconds, cold = future.result()
                    except pm.PapermillExecutionError as err:
                        for other in futures:
                            other.cancel()
                        print("\r\033[K" if live else "", end="")
                        return _failed(nb, out_dir / nb.name, err)
                    print("\r\033[K" if live else "", end="")
                    any_cold |= cold
                    _record(times, nb, seconds, cold, times_path, out_dir, label)
                if live and running:
                    print(f"\r\033[K{_status_line(running, times)}"[:200], end="", flush=True)
    wall = time.perf_counter() - started
    _record_run(times, wall, len(jobs), n, any_cold, times_path, out_dir)
    print(f"all {len(jobs)} notebook(s) done in {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
