"""The study's configuration: ``configs/study.yaml`` read, typed and expanded into problems.

A study YAML names a grid, seeds, a ``base`` of experiment keys, ``axes`` whose variants are
crossed into a matrix of problems, and ``extra`` whole experiment configs by family (the examples: tabular, vision, ...), and
the ``peers`` every problem trains beside the search.
It is typed by :class:`StudyConfig`'s hints with the same reading as an experiment config
(:mod:`lr_lab.config.hints`), and each problem is an ordinary experiment config: its keys are
read by :func:`lr_lab.config.parse.load`, as the Python API reads a dict.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from lr_lab.config.files import read_yaml_mapping
from lr_lab.config.hints import Signature, shown
from lr_lab.config.parse import Request, load
from lr_lab.errors import UsageError

FORCED = {"finder.curve": "both", "trials.executor": "inline"}  # every problem, every rule twice


@dataclass
class StudyConfig:
    """``configs/study.yaml``: the matrix, the grid, the seeds."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """The seeds every problem runs."""
    grid: dict[str, float] = field(default_factory=lambda: {"from": 1e-5, "to": 1.0, "points": 13})
    """The oracle's log grid of learning rates: {from: 1.0e-5, to: 1.0, points: 13}."""
    base: dict[str, Any] = field(default_factory=dict)
    """Experiment keys every built-in problem shares (dotted: trials.max_epochs: 10)."""
    axes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Axis -> variant -> experiment keys; every combination of variants is one problem."""
    extra: dict[str, dict[str, str | dict[str, Any]]] = field(default_factory=dict)
    """Family -> name -> an experiment config file (or bundled name), or its keys (dotted, as
    ``base``): one problem each (the examples: tabular, vision, sequence, transformer)."""
    family: str = "regression"
    """The family of the matrix's problems (the built-in model and data)."""
    peers: list[str] = field(default_factory=list)
    """The ``baselines`` every problem trains beside the search (LR-free optimizers, optuna)."""
    workers: int | None = None
    """Problems side by side (null: the usable cores)."""
    quick: dict[str, Any] = field(default_factory=dict)
    """What --quick puts in place of the keys above."""


@dataclass
class Problem:
    """One problem of the study: a name, its family labels, and its experiment config."""

    name: str
    family: str  # "regression", "tabular", "vision", ...
    families: dict[str, str]  # the matrix's axes -> variant (none for an extra problem)
    config: str | None  # an experiment config file, or None for the defaults
    overrides: dict[str, Any]  # dotted keys on top

    def request(self) -> Request:
        """The problem as the API reads it (typed; its problems listed, not raised)."""
        return load(self.config, self.overrides)


def grid_lrs(spec: dict[str, float]) -> list[float]:
    """The grid's learning rates, every one at 3 significant digits (as the run names them)."""
    if set(spec) != {"from", "to", "points"}:
        raise UsageError(f"grid = {shown(spec)}: expected {{from: 1.0e-5, to: 1.0, points: 13}}")
    low, high, n = float(spec["from"]), float(spec["to"]), int(spec["points"])
    if not (0 < low < high and n >= 2):
        raise UsageError(f"grid = {shown(spec)}: needs 0 < from < to and points >= 2")
    step = (math.log10(high) - math.log10(low)) / (n - 1)
    return [float(f"{10 ** (math.log10(low) + k * step):.3g}") for k in range(n)]


def load_study(path: Path, quick: bool) -> dict[str, Any]:
    """A study YAML's mapping, its ``quick:`` part applied with ``--quick``."""
    data = read_yaml_mapping(path, "study config")
    quick_part = data.get("quick") or {}
    return {**data, **quick_part} if quick and isinstance(quick_part, dict) else data


def parse_study(data: dict[str, Any], where: str) -> StudyConfig:
    """A study mapping typed by :class:`StudyConfig`; one line naming the key when one is wrong.

    Raises:
        UsageError: The first problem (with the file it is in).
    """
    values, problems = Signature(StudyConfig).convert(data, "")
    if problems:
        raise UsageError(f"{where}: {problems[0]}")
    cfg = StudyConfig(**values)
    for axis, variants in cfg.axes.items():
        if not variants:
            raise UsageError(f"{where}: axes.{axis}: expected variants, e.g. {{sgd: {{...}}}}")
    if cfg.workers is not None and cfg.workers < 1:
        raise UsageError(f"{where}: workers = {cfg.workers}: expected a positive integer, or null")
    if not cfg.seeds:
        raise UsageError(f"{where}: seeds = []: expected a list of integers")
    grid_lrs(cfg.grid)
    return cfg


def problems(cfg: StudyConfig) -> list[Problem]:
    """The matrix's problems (every combination of the axes' variants), then the extra ones."""
    common = {**FORCED, "trials.lrs": grid_lrs(cfg.grid), "seeds": cfg.seeds,
              "baselines": list(cfg.peers)}  # fmt: skip
    out = []
    axes = list(cfg.axes.items())
    for combo in product(*[list(values.items()) for _, values in axes]) if axes else []:
        keys = dict(cfg.base)
        for _, (_, variant) in zip(axes, combo):
            keys.update(variant)
        families = {axis: label for (axis, _), (label, _) in zip(axes, combo)}
        name = "-".join(label for label, _ in combo)
        out.append(Problem(name, cfg.family, families, None, {**keys, **common}))
    for family, named in cfg.extra.items():
        for name, config in named.items():
            if isinstance(config, dict):  # the problem's keys, inline
                out.append(Problem(name, family, {}, None, {**config, **common}))
            else:
                out.append(Problem(name, family, {}, config, dict(common)))
    return out


# The examples' modules -> (the module each imports at run time, the extra that installs it):
# checked before a study's folder exists, without importing torch or the example.
NEEDS = {
    "lr_lab.examples.digits": ("sklearn", "examples"),
    "lr_lab.examples.tabular": ("sklearn", "examples"),
    "lr_lab.examples.vision": ("sklearn", "examples"),
    "lr_lab.examples.forecasting": ("pytorch_forecasting", "forecasting"),
}


def _missing(class_path: str) -> str | None:
    """What an example named by ``class_path`` lacks here, in one line, or None."""
    example = class_path.rsplit(".", 1)[0]
    module, extra = NEEDS.get(example, (None, None))
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{example} needs {module}: pip install -e '.[{extra}]'"


def check_problems(study: list[Problem], out: Path) -> None:
    """Every problem's config checked (light checks) before anything runs."""
    from lr_lab.config.checks import check_request

    where: dict[str, list[str]] = {}  # each problem found -> the problems it was found in
    for problem in study:
        request = problem.request()
        found = request.problems + check_request(request.config)
        found += [m for s in (request.config.model, request.config.data)
                  if (m := _missing(s.class_path))]  # fmt: skip
        for line in dict.fromkeys(found):  # a model and its data from one example: one line
            where.setdefault(line, []).append(problem.name)
    # A missing package is one line, not one per problem that needs it.
    errors = [f"{names[0]}: {line}" if len(names) == 1 else
              f"{line} ({len(names)} problems: {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
              for line, names in where.items()]  # fmt: skip
    if errors:
        raise UsageError("\n".join(errors[:20]))
