"""A planned trial: its name (which sorts by LR in TensorBoard), and the spec an executor runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lr_lab.analysis.records import INIT_FILE, seed_dir
from lr_lab.training.problem import FitSettings, Problem, TrialSpec


@dataclass(frozen=True)
class Planned:
    """A trial of the plan: what identifies it, before it is given a problem to train."""

    name: str
    lr: float
    seed: int
    role: str  # "fixed", "finder_check", "race" or "search" (the search's winner, full budget)
    rules: tuple[str, ...] = ()
    rung: int | None = None  # a race trial's rung
    epochs: int | None = None  # a race trial's budget (stopped there; None: the full budget)
    optimizer: str | None = None  # a baseline's LR-free optimizer

    @property
    def key(self) -> str:
        """``seed0/020_lr=0.01``: the trial's id within the run."""
        return f"seed{self.seed}/{self.name}"


def specs(
    planned: list[Planned], problem: Problem, fit: FitSettings, run_dir: Path, threads: int
) -> list[TrialSpec]:
    """The planned trials as specs an executor runs."""
    return [
        TrialSpec(
            p.name,
            p.lr,
            p.seed,
            p.role,
            str(seed_dir(run_dir, p.seed) / INIT_FILE),
            str(seed_dir(run_dir, p.seed)),
            problem,
            fit,
            p.rules,
            threads,
            stop_epochs=p.epochs,
            rung=p.rung,
            optimizer=p.optimizer,
        )
        for p in planned
    ]


def trial_name(lr: float, tag: str = "") -> str:
    """A TensorBoard run name that sorts by learning rate: ``0800_lr=0.01``, ``0814_lr=0.0138_valley``.

    TensorBoard lists runs by name, as text (``lr=1e-05`` would come after ``lr=1``), so the
    name starts with the LR's place on a log scale, ``100 x (log10(lr) + 10)``: every trial of
    a run, grid, rule, race or search, in LR order, and a trial's name depends on its LR alone
    (never on which other trials a run has). A tag says what it is (``race0``: a race's rung).
    """
    order = min(9999, max(0, round(100 * (math.log10(lr) + 10))))
    return f"{order:04d}_lr={lr:.3g}" + (f"_{tag}" if tag else "")
