"""The study's configuration: ``configs/study.yaml`` read, checked, and expanded into problems.

A study YAML names a grid, seeds, a ``base`` of experiment keys, ``axes`` whose variants are
crossed into a matrix of problems, and ``extra`` whole experiment configs (the digits example).
Each problem becomes the command-line keys of one ordinary lr_lab run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from lr_lab.config_files import override_argv, read_yaml_mapping, resolve_config
from lr_lab.errors import UsageError

FORCED = {"finder.curve": "both", "trials.executor": "inline"}  # every problem, every rule twice


@dataclass
class Problem:
    """One problem of the study: a name, its family labels, and its command-line keys."""

    name: str
    families: dict[str, str]
    argv: list[str]


@dataclass
class StudyConfig:
    """``configs/study.yaml``: the matrix, the grid, the seeds."""

    seeds: list[int]
    grid: list[float]
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # name -> experiment config file
    workers: int | None = None


def _grid(spec: Any) -> list[float]:
    if not (isinstance(spec, dict) and set(spec) == {"from", "to", "points"}):
        raise UsageError(f"grid = {spec!r}: expected {{from: 1.0e-5, to: 1.0, points: 13}}")
    low, high, n = float(spec["from"]), float(spec["to"]), int(spec["points"])
    if not (0 < low < high and n >= 2):
        raise UsageError(f"grid = {spec!r}: needs 0 < from < to and points >= 2")
    step = (math.log10(high) - math.log10(low)) / (n - 1)
    return [float(f"{10 ** (math.log10(low) + k * step):.3g}") for k in range(n)]


def load_study(path: Path, quick: bool) -> dict[str, Any]:
    """A study YAML's mapping, its ``quick:`` part applied with ``--quick``."""
    data = read_yaml_mapping(path, "study config")
    return {**data, **(data.get("quick") or {})} if quick else data


def parse_study(data: dict[str, Any], where: str) -> StudyConfig:
    """Check a study mapping's keys and types; one line naming the key when one is wrong."""
    unknown = sorted(set(data) - {"seeds", "grid", "base", "axes", "extra", "workers", "quick"})
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}")
    seeds = data.get("seeds", [0, 1, 2])
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        raise UsageError(f"{where}: seeds = {seeds!r}: expected a list of integers")
    base, axes, extra = data.get("base") or {}, data.get("axes") or {}, data.get("extra") or {}
    if not isinstance(base, dict):
        raise UsageError(f"{where}: base = {base!r}: expected a mapping of experiment keys")
    for axis, variants in axes.items() if isinstance(axes, dict) else [("axes", axes)]:
        if not (isinstance(variants, dict) and variants
                and all(isinstance(v, dict) for v in variants.values())):  # fmt: skip
            raise UsageError(
                f"{where}: axes.{axis}: expected variants, e.g. {{sgd: {{optimizer.name: sgd}}}}"
            )
    if not (isinstance(extra, dict) and all(isinstance(v, str) for v in extra.values())):
        raise UsageError(f"{where}: extra = {extra!r}: expected name: config file")
    workers = data.get("workers")
    if workers is not None and not (type(workers) is int and workers >= 1):
        raise UsageError(f"{where}: workers = {workers!r}: expected a positive integer, or null")
    return StudyConfig(seeds=seeds, grid=_grid(data.get("grid")), base=base, axes=axes,
                       extra=extra, workers=workers)  # fmt: skip


def problems(cfg: StudyConfig) -> list[Problem]:
    """The matrix's problems (every combination of the axes' values), then the extra ones."""
    common = {**FORCED, "trials.lrs": cfg.grid, "seeds": cfg.seeds}
    out = []
    axes = list(cfg.axes.items())
    for combo in product(*[list(values.items()) for _, values in axes]) if axes else []:
        keys = {**cfg.base}
        for _, (_, variant) in zip(axes, combo):
            keys.update(variant)
        families = {axis: label for (axis, _), (label, _) in zip(axes, combo)}
        name = "-".join(label for label, _ in combo)
        out.append(Problem(name, families, override_argv({**keys, **common})))
    for name, config in cfg.extra.items():
        argv = ["--config", str(resolve_config(config)), *override_argv(common)]
        out.append(Problem(name, {"problem": name}, argv))
    return out
