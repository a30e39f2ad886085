"""Run profiles (params/*.yaml) and validation of a notebook's parameters in one call.

A profile has a ``common`` section injected into every notebook and a ``notebooks`` section with
per-notebook values. Every parameter name the book uses has one rule here, so a wrong value fails
with one line naming the parameter and the valid choices.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from .data import DATASETS
from .runtime import DEVICES, PRECISIONS, project_root

PROFILES = ("smoke", "book", "paper")


class ParameterError(ValueError):
    """A notebook parameter has a value outside its valid choices."""


@dataclass(frozen=True)
class Rule:
    """A check on one parameter and the human description of what is valid."""

    check: Callable[[Any], bool]
    valid: str


def _int_at_least(lo: int) -> Rule:
    return Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo, f"an integer >= {lo}")


def _int_between(lo: int, hi: int, unit: str = "") -> Rule:
    return Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"{lo}..{hi}{unit}")


def _one_of(choices) -> Rule:
    return Rule(lambda v: v in choices, ", ".join(map(repr, choices)))


def _text() -> Rule:
    return Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string (a path)")


def _distinct_ints(lo: int, hi: int, what: str, example: str) -> Rule:
    return Rule(lambda v: isinstance(v, list) and len(v) > 0 and len(set(v)) == len(v)
                and all(isinstance(m, int) and not isinstance(m, bool) and lo <= m <= hi for m in v),
                f"a non-empty list of distinct {what} in {lo}..{hi}, e.g. {example}")


RULES: dict[str, Rule] = {
    "profile": _one_of(PROFILES),
    "seed": _int_at_least(0),
    "device": _one_of(DEVICES),
    "precision": _one_of(tuple(PRECISIONS)),
    "results_dir": _text(),
    "fig_dir": _text(),
    "cache_dir": _text(),
    "dataset": _one_of(DATASETS),
    "n_train": _int_at_least(1),
    "n_test": _int_at_least(1),
    "n_eval": _int_at_least(1),
    "epochs": _int_at_least(1),
    "max_shift": _int_at_least(0),
    "filt_size": _int_between(1, 7),
    "filter_sizes": _distinct_ints(1, 7, "filter sizes", "[1, 2, 3, 5]"),
    "object_sizes": _distinct_ints(8, 48, "object sizes (px)", "[28, 20, 14]"),
    "object_size": _int_between(8, 48, " (px)"),
    "grid_step": _int_at_least(1),
    "stage_counts": _distinct_ints(1, 4, "numbers of stride-2 stages", "[1, 2, 3, 4]"),
    "n_seeds": _int_at_least(2),           # an interval over seeds needs two
    "resnet18_seeds": _int_at_least(0),     # 0: chapter 9's ResNet-18 section trains nothing
    "n_sequences": _int_at_least(1),
    "n_frames": _int_at_least(2),
    "frac_steps": _int_at_least(2),
    "placements": _int_at_least(1),
    "n_scenes": _int_at_least(1),
    "angle_step": _int_between(1, 180, " (degrees)"),
    "scene_size": _int_at_least(64),
    "imagenet_val": Rule(lambda v: isinstance(v, str), "a folder of ImageNet validation images in ImageFolder layout, "
                         "or '' (none: the ImageNet section is skipped)"),
    "n_imagenet": _int_at_least(1),
    "width_factor": _int_between(1, 32, " (x each network's channels)"),
    "convs_per_stage": _int_between(1, 4),
}


def validate(**values: Any) -> SimpleNamespace:
    """Check each named value against its rule; return them as attributes."""
    for name, value in values.items():
        if name not in RULES:
            raise ParameterError(f"unknown parameter {name!r}; valid names: {', '.join(sorted(RULES))}")
        if not RULES[name].check(value):
            raise ParameterError(f"parameter {name}={value!r} is invalid; valid: {RULES[name].valid}")
    return SimpleNamespace(**values)


def collect(namespace: dict[str, Any]) -> SimpleNamespace:
    """Validate every parameter defined in a notebook's namespace (pass ``globals()``); relative
    *_dir paths are resolved from the project root, so a notebook runs the same from any folder."""
    cfg = validate(**{k: v for k, v in namespace.items() if k in RULES})
    for key, value in vars(cfg).items():
        if key.endswith("_dir"):
            setattr(cfg, key, str(project_root() / value))
    return cfg


def load_profile(name_or_path: str | Path, params_dir: str | Path = "params") -> dict:
    """Read a profile YAML by name (params/<name>.yaml) or path; check its two sections."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(params_dir) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(params_dir).glob("*.yaml"))
        raise ParameterError(f"profile {str(name_or_path)!r} not found at {path}; valid: {', '.join(known)}")
    doc = yaml.safe_load(path.read_text()) or {}
    if set(doc) - {"common", "notebooks"}:
        raise ParameterError(f"{path}: top-level keys must be 'common' and 'notebooks', got {sorted(doc)}")
    doc.setdefault("common", {})
    doc.setdefault("notebooks", {})
    validate(**doc["common"])
    for values in doc["notebooks"].values():
        validate(**(values or {}))
    return doc


def notebook_parameters(profile: dict, notebook: str) -> dict[str, Any]:
    """The parameters a profile gives one notebook: common values, then the notebook's own."""
    return {**profile["common"], **(profile["notebooks"].get(notebook) or {})}
