"""A planned trial: its name (which sorts by LR in TensorBoard), and the spec an executor runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lr_lab.analysis.results import INIT_FILE, seed_dir
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
        )
        for p in planned
    ]


def trial_name(lr: float, order: int, tag: str = "") -> str:
    """A TensorBoard run name that sorts by learning rate: ``020_lr=0.01``, ``021_lr=0.012_valley``.

    A race trial's tag is its rung (``022_lr=0.0178_race0``).

    ``order`` (see :func:`lr_orders`) puts the runs in LR order in TensorBoard's run lists, which
    sort names as text (``lr=1e-05`` would come after ``lr=1``); the LR follows, readable.
    """
    return f"{order:03d}_lr={lr:.3g}" + (f"_{tag}" if tag else "")


def lr_orders(grid: list[float], checks: list[float] = ()) -> tuple[list[int], list[int]]:
    """Sort keys for run names, in LR order.

    Grid LRs get 10, 20, 30... in LR order; each check LR gets the key of the grid LR just below
    it plus 1, 2, ... in LR order (0 plus ... below the whole grid). A grid trial's key depends on the grid alone, so it never changes when the finder's checks
    are added later (or on resume).
    """
    ranked = sorted(grid)
    grid_keys = [10 * (ranked.index(lr) + 1) for lr in grid]
    check_keys = []
    for lr in checks:
        base = 10 * sum(g < lr for g in ranked)
        same_gap = sorted(c for c in checks if 10 * sum(g < c for g in ranked) == base)
        check_keys.append(base + 1 + same_gap.index(lr))
    return grid_keys, check_keys
