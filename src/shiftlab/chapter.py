"""What every chapter notebook does: validate parameters, seed, threads, figure style, test data (``start``); load
models, read measurements from the evaluation cache and save the results, with the chapter's run time and its models'
training times (``run``); glue numbers, verdicts and the texts chosen by an outcome for the prose."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch
import yaml

from . import convergence, data, evalcache, findings, params, plots, prose, protocols, results, runtime, shifts, zoo


def start(namespace: dict[str, Any]) -> tuple[SimpleNamespace, torch.device]:
    """Validate the notebook's parameters (pass ``globals()``), seed everything, use every core,
    set the figure style; return the parameters and the torch device."""
    cfg = params.collect(namespace)
    runtime.seed_everything(cfg.seed)
    runtime.set_threads()
    runtime.set_precision(getattr(cfg, "precision", "fp32"))
    plots.set_style()
    return cfg, runtime.resolve_device(cfg.device)


def parameter_table(cfg: SimpleNamespace) -> pd.DataFrame:
    """The parameters in effect, without machine-specific paths, for display at the top of a chapter."""
    return pd.Series({k: v for k, v in vars(cfg).items() if not k.endswith("_dir")}, name="value").to_frame()


TEST_ORDER = "shuffled with the seed"     # how load_test_set orders a subset; part of every cached protocol
FRAME_MARGIN = 8     # px of mosaic around a 32-px window in the test frames: the largest move a protocol makes
TEST_FRAMES = (*data.FRAMES, "class mosaic")    # the frames a chapter tests in; the last only as a control


GLUE_PREFIX = "application/papermill.record/"   # MyST-NB reads glued values under this MIME prefix


def load_test_set(cfg: SimpleNamespace, size: int = 32, seed: int | None = None) -> tuple[data.Split, torch.Tensor]:
    """A test subset (n_test items of the profile's dataset, drawn with seed, default the chapter's, in an order drawn
    with seed, so that its first n_eval items are a random sample of the split) and its images padded to size x size.
    A chapter that decides a claim by seed scores seed s on the subset drawn with s."""
    seed = cfg.seed if seed is None else seed
    test = data.load(getattr(cfg, "dataset", "fashion_mnist"), "test").subset(cfg.n_test, seed).shuffled(seed)
    return test, test.as_float(size)


def glue(name: str, value: Any) -> None:
    """Record a number or text for the chapter's prose ({glue:text}`name:format`), as a plain Python
    value: NumPy and torch scalars print as np.float64(...) and break the format.

    The record is MyST-NB's glue format: a display output, not shown, whose MIME types carry the prefix
    ``application/papermill.record/`` and whose metadata names it (``{"scrapbook": {"name": ...}}``)."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    if hasattr(value, "item"):
        value = value.item()
    bundle, metadata = format_display_data(value)
    metadata["scrapbook"] = {"name": name, "mime_prefix": GLUE_PREFIX}
    display({GLUE_PREFIX + mime: data for mime, data in bundle.items()}, raw=True, metadata=metadata)


def glue_text(name: str, outcome: str, **values) -> None:
    """Glue, as `name`, the text book/claims_text.yaml gives for the outcome measured, filled with values."""
    glue(name, prose.outcome(name, outcome, values))


def verdicts(found: list) -> pd.DataFrame:
    """Glue every finding for the prose (``<key>``: its sentence, ``<key>_verdict``, ``<key>_means``:
    the interpretation for the verdict measured) and return the reader's table of them."""
    for f in found:
        glue(f.key, f.sentence())
        glue(f"{f.key}_verdict", f.verdict)
        glue(f"{f.key}_means", f.meaning())
    return findings.table(found)


PLAN_ENV = "SHIFTLAB_PLAN"     # a file: a plan run lists the chapter's models there instead of training them


class PlanComplete(Exception):
    """A plan run reached the chapter's first model: every model it uses is listed by then."""


class Run:
    """One run of a chapter notebook: created in its first cell (``chapter.run(globals(), "07_...")``), saved in its
    last (``run.save(metrics)``), so it works cell by cell in JupyterLab as well as under papermill. It holds the
    validated parameters and the device, times the notebook from its creation to the save, records the training
    time of every model it loads, measures through the evaluation cache, and keeps every finding it glues for the
    results file (a finding glued again replaces the earlier one)."""

    def __init__(self, namespace: dict[str, Any], notebook: str):
        self.cfg, self.device = start(namespace)
        self.notebook = notebook
        self.started = time.perf_counter()
        self.train_seconds: dict[str, float] = {}
        self.models: dict[str, dict] = {}     # "<zoo name>/seed<s>" -> its cache key and weights' SHA-256
        self.found: dict[str, findings.Finding] = {}
        self.equivalences: dict[str, tuple[str, str]] = {}     # equivalence claim -> the zoo names it compares
        self.trained: list[str] = []           # the zoo names the chapter prepared
        self._test_sets: dict[tuple[int, int | str], tuple] = {}

    @property
    def seeds(self) -> list[int]:
        """The seeds a claim about training is decided over: n_seeds consecutive seeds from the chapter's seed (one
        when the chapter has no n_seeds). Seed s trains every arm and scores it on ``test_set(s)``."""
        return list(range(self.cfg.seed, self.cfg.seed + getattr(self.cfg, "n_seeds", 1)))

    def per_seed(self, effect: Callable[[int], Any]) -> list[float]:
        """A claim's per-seed effects: for each of the run's seeds s, the mean over its images of effect(s)
        (``protocols.per_seed``)."""
        return protocols.per_seed(effect, self.seeds)

    def test_set(self, seed: int | None = None, size: int = 32) -> tuple[data.Split, torch.Tensor]:
        """The test subset drawn with seed (default: the chapter's) and its images padded to size x size
        (``load_test_set``), loaded once per seed and size."""
        seed = self.cfg.seed if seed is None else seed
        if (seed, size) not in self._test_sets:
            self._test_sets[(seed, size)] = load_test_set(self.cfg, size, seed)
        return self._test_sets[(seed, size)]

    def windows(self, seed: int | None = None, frame: str = "mosaic") -> tuple[data.Split, torch.Tensor, torch.Tensor]:
        """The test subset drawn with seed (``test_set``) in frames FRAME_MARGIN px wider than a 32-px window on every
        side, each item amid its neighbours (``data.mosaic_frames``; frame 'class mosaic': neighbours of the item's
        own class; 'black': zero-padded, where a window shift is a shift with black fill), and their centred 32-px
        windows, what the 32-px networks see unmoved: (test, windows (N, C, 32, 32), frames)."""
        if frame not in TEST_FRAMES:
            raise ValueError(f"frame={frame!r} is invalid; valid: {', '.join(TEST_FRAMES)}")
        seed = self.cfg.seed if seed is None else seed
        if (seed, frame) not in self._test_sets:
            test, _ = self.test_set(seed)
            side = shifts.WINDOW + 2 * FRAME_MARGIN
            frames = (data.pad_to(test.as_float(), side) if frame == "black" else
                      data.mosaic_frames(test.as_float(), side, test.labels if frame == "class mosaic" else None))
            self._test_sets[(seed, frame)] = (test, shifts.window(frames, 0, 0), frames)
        return self._test_sets[(seed, frame)]

    def prepare(self, names: list[str], seeds=None) -> int:
        """Train, side by side, the zoo models the chapter will ask for (names x seeds, default: the chapter's seed)
        that are not cached yet; returns how many were trained. A chapter prepares every model it uses before it
        loads the first one, so a plan run (``$SHIFTLAB_PLAN``) learns them all: it appends them to that file,
        trains nothing, and stops at the first ``model``. The networks prepared are those ``save`` states the
        convergence of."""
        if seeds is None or list(seeds):
            self.trained = list(dict.fromkeys([*self.trained, *names]))
        plan = os.environ.get(PLAN_ENV)
        if plan:
            with open(plan, "a") as f:
                for entry in zoo.planned(self.cfg, self.device, names, seeds=seeds):
                    f.write(json.dumps({"notebook": self.notebook, **entry}) + "\n")
            return 0
        return zoo.prepare(self.cfg, self.device, names, seeds=seeds)

    def model(self, name: str, seed: int | None = None) -> tuple[torch.nn.Module, dict]:
        """The zoo model `name` at the chapter's size and scale (seed: the chapter's unless given) and its info dict;
        its training time (the sum over its epochs) is recorded as train_seconds[name], or [name/seed<s>] when
        a seed is given."""
        if os.environ.get(PLAN_ENV):
            raise PlanComplete(self.notebook)
        net, info = zoo.for_chapter(name, self.cfg, self.device, seed=seed)
        self.train_seconds[name if seed is None else f"{name}/seed{seed}"] = sum(h["seconds"] for h in info["history"])
        self.models[f"{name}/seed{info['config']['train']['seed']}"] = {"key": info["key"], "weights": info["weights"]}
        return net, info

    def protocol(self, *names: str, **values) -> dict:
        """A measurement's protocol: the test subset it reads (n_test and seed, in the order ``load_test_set`` draws),
        the named parameters' values, and the values given."""
        return {"n_test": self.cfg.n_test, "seed": self.cfg.seed, "test_order": TEST_ORDER,
                **{k: getattr(self.cfg, k) for k in names}, **values}

    def cached(self, infos: dict | list[dict], measurement: str, compute: Callable[[], Any], *names: str,
               **values) -> Any:
        """compute() for the models described by infos, read from the evaluation cache when it was made before under
        the same protocol (``protocol(*names, **values)``)."""
        return evalcache.cached(self.cfg.cache_dir, infos, measurement, self.protocol(*names, **values), compute)

    def verdicts(self, found: list) -> pd.DataFrame:
        """Adjust the claims among the findings within the chapter's two families, primary and exploratory (Holm,
        ``findings.adjust``), glue them (``verdicts``), keep them for the results file, and return the reader's table.
        A chapter decides all the claims of a family in one call, so that the family is whole (a call that repeats the
        same keys replaces them)."""
        found = findings.adjust(found)
        for family in findings.FAMILIES:
            now = {f.key for f in found if f.family == family and f.p is not None}
            earlier = {k for k, f in self.found.items() if f.family == family and f.p is not None}
            if now and earlier and now != earlier:
                raise ValueError(f"{family} claims {sorted(earlier)} were decided in an earlier call, {sorted(now)} "
                                 f"in this one: decide all {family} claims of a chapter in one run.verdicts call")
        self.found.update({f.key: f for f in found})
        return verdicts(found)

    def timings(self) -> dict:
        """Wall-clock seconds since the run was created, and each loaded model's training time when there is one."""
        out = {"notebook_seconds": time.perf_counter() - self.started}
        return {**out, "train_seconds": dict(self.train_seconds)} if self.train_seconds else out

    def equivalence_arms(self, key: str, a: str, b: str) -> None:
        """Name the zoo networks a and b that equivalence claim `key` compares: at the save, ``<key>_budget`` is glued,
        what the convergence record says of resting that claim on the book's budget
        (``convergence.equivalence_budget``)."""
        self.equivalences[key] = (a, b)

    def save(self, metrics: dict) -> None:
        """Write the chapter's results file, <results_dir>/<notebook>.json (the metrics, every finding glued under
        "verdicts", the parameters, the timings and the cache key of every model it loaded), and say so in one line
        (nothing is returned, so a notebook's last cell shows no machine-specific path). Glues ``convergence``, once:
        what book/convergence.json says of every network the chapter prepared (``convergence.status``)."""
        if self.trained:
            outcome, values = convergence.status(self.trained, self.cfg)
            glue_text("convergence", outcome, **values)
        if self.found:
            outcome, values = protocol_change(list(self.found.values()), self.cfg)
            glue_text("protocol_change", outcome, **values)
        for key, (a, b) in self.equivalences.items():
            f = self.found.get(key)
            if f is None or f.margin is None:
                raise ValueError(f"{key} is not an equivalence claim this chapter decided; valid: "
                                 f"{', '.join(k for k, g in self.found.items() if g.margin is not None) or 'none'}")
            margin = 100 * f.margin if f.unit == "pp" else f.margin
            outcome, values = convergence.equivalence_budget(a, b, margin, self.cfg)
            glue(f"{key}_budget", prose.outcome("equivalence_budget", outcome, values))
        if self.found:
            metrics = {**metrics, "verdicts": findings.save_all(list(self.found.values()))}
        cfg = self.cfg
        path = results.save(cfg.results_dir, self.notebook, cfg.profile, vars(cfg), metrics, self.timings(),
                            models=self.models)
        print(f"results written to {path.name} in the profile's results folder")


def protocol_change(found: list, cfg: SimpleNamespace) -> tuple[str, dict]:
    """The outcome of the prose text ``protocol_change`` for a chapter's findings: ``changed`` (the items: each claim
    whose protocol changed since book/claims.yaml stated its verdict, and whose verdict this run differs from it,
    ``findings.protocol_changes``), ``none``, or ``other_run`` (not the book profile, whose verdicts the book
    states)."""
    if cfg.profile != "book":
        return "other_run", {"profile": cfg.profile}
    book = runtime.project_root() / "book"

    def read(name: str) -> dict:
        return (yaml.safe_load(f.read_text()) or {}) if (f := book / name).is_file() else {}

    changed = findings.protocol_changes(found, read("claims_protocols.yaml"), read("claims.yaml"),
                                        prose.load()["claims"])
    return ("changed", {"changed": changed, "k": len(changed)}) if changed else ("none", {})


def run(namespace: dict[str, Any], notebook: str) -> Run:
    """Start a chapter (``start``: pass ``globals()``) and return its run, which saves as `notebook` (the name without
    .ipynb)."""
    return Run(namespace, notebook)


def imagenet_frames(cfg: SimpleNamespace) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The chapter's ImageNet validation frames and labels (n_imagenet images of the imagenet_val folder, drawn
    with the seed), or None, with one line saying how to run the section, when imagenet_val is empty."""
    if not cfg.imagenet_val:
        print("This section runs with an ImageNet validation folder (ImageFolder layout), on a GPU: "
              "make book PROFILE=paper PARAMS=imagenet_val=/path/to/val")
        return None
    from . import imagenet

    return imagenet.validation_frames(cfg.imagenet_val, cfg.n_imagenet, cfg.seed)
