"""The plan of a run: which trials each seed trains, what is left, and what does not belong.

Pure functions of the config and the records: a resumed run plans the same trials with the same
names, and a record the plan does not contain (a hand-edited ``results.json``) is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lr_lab.analysis.results import INIT_FILE, FinderResult, RunResults, seed_dir
from lr_lab.config.schema import CORRECTED, FINDER_RUN, ExperimentConfig
from lr_lab.errors import ResultsError
from lr_lab.training.problem import FitSettings, Problem, TrialSpec

CHECKS = "finder checks"  # the pending entry for checks whose LRs the finder has not yet chosen


def rule_names(cfg: ExperimentConfig) -> list[str]:
    """The rules a run reads off its finder curves, in order (``valley@corrected`` with both)."""
    if not cfg.finder.enabled:
        return []
    names = list(cfg.finder.rules)
    return names + [n + CORRECTED for n in names] if cfg.finder.curve == "both" else names


@dataclass(frozen=True)
class Planned:
    """A trial of the plan: what identifies it, before it is given a problem to train."""

    name: str
    lr: float
    seed: int
    role: str  # "fixed" or "finder_check"
    rules: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``seed0/020_lr=0.01``: the trial's id within the run."""
        return f"seed{self.seed}/{self.name}"


def fixed_trials(cfg: ExperimentConfig, seed: int) -> list[Planned]:
    """The grid trials of one seed."""
    orders, _ = lr_orders(cfg.trials.lrs)
    return [Planned(trial_name(lr, o), lr, seed, "fixed") for lr, o in zip(cfg.trials.lrs, orders)]


def check_trials(cfg: ExperimentConfig, finder: FinderResult, results: RunResults) -> list[Planned]:
    """One ``finder_check`` trial per distinct suggestion not already trained at that LR.

    The grid trials of the finder's seed in ``results`` are those LRs (a suggestion equal to a
    grid LR reads that trial instead).
    """
    taken = [t.lr for t in results.trials if t.seed == finder.seed and t.role == "fixed"]
    by_lr: dict[float, list[str]] = {}
    for rule, lr in finder.rules.items():
        if lr is not None and not any(math.isclose(lr, t) for t in taken):
            by_lr.setdefault(lr, []).append(rule)
    _, orders = lr_orders(cfg.trials.lrs, list(by_lr))
    return [
        Planned(trial_name(lr, order, tuple(rules)), lr, finder.seed, "finder_check", tuple(rules))
        for (lr, rules), order in zip(by_lr.items(), orders)
    ]


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
        )  # fmt: skip
        for p in planned
    ]


def check_plan(cfg: ExperimentConfig, results: RunResults) -> None:
    """Refuse records the plan does not contain (a hand-appended trial must not be ranked)."""
    planned = {s.key: s for seed in cfg.seed_list for s in fixed_trials(cfg, seed)}
    for finder in results.finders:
        if finder.seed not in cfg.seed_list:
            raise ResultsError(
                f"results.json: a finder of seed {finder.seed}, not in this run's seeds"
            )
        planned |= {s.key: s for s in check_trials(cfg, finder, results)}
    keys = [t.key for t in results.trials]
    for trial in results.trials:
        spec = planned.get(trial.key)
        if spec is None:
            raise ResultsError(
                f"results.json: trial {trial.key} (lr {trial.lr:g}) is not in this run's plan "
                "(config.yaml); remove it or start a new run"
            )
        # A name can stay while its LR or role is edited: the table would then rank an LR
        # that never trained.
        if (trial.lr, trial.role) != (spec.lr, spec.role):
            raise ResultsError(
                f"results.json: trial {trial.key} is recorded as {trial.role} at lr {trial.lr!r}; "
                f"its plan says {spec.role} at lr {spec.lr!r} (edited?); start a new run"
            )
        if keys.count(trial.key) > 1:
            raise ResultsError(f"results.json: trial {trial.key} is recorded twice")


def plan_pending(cfg: ExperimentConfig, results: RunResults) -> list[str]:
    """What is left to do: trial keys, ``seedN/finder`` and ``seedN/finder checks``."""
    done = {t.key for t in results.trials}
    finders = {f.seed: f for f in results.finders}
    pending = []
    for seed in cfg.seed_list:
        pending += [s.key for s in fixed_trials(cfg, seed) if s.key not in done]
        if not cfg.finder.enabled:
            continue
        if seed not in finders:
            pending.append(f"seed{seed}/{FINDER_RUN}")
            if cfg.finder.verify:
                pending.append(f"seed{seed}/{CHECKS}")
        elif cfg.finder.verify:
            checks = check_trials(cfg, finders[seed], results)
            pending += [s.key for s in checks if s.key not in done]
    return pending


def trial_name(lr: float, order: int, rules: tuple[str, ...] = ()) -> str:
    """A TensorBoard run name that sorts by learning rate: ``020_lr=0.01``, ``025_lr=0.012_valley``.

    ``order`` (see :func:`lr_orders`) puts the runs in LR order in TensorBoard's run lists, which
    sort names as text (``lr=1e-05`` would come after ``lr=1``); the LR follows, readable.
    """
    return f"{order:03d}_lr={lr:.3g}" + (f"_{'+'.join(rules)}" if rules else "")


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
