"""The plan of a run: which trials each seed trains, what is left, and what does not belong.

Pure functions of the config and the records: a resumed run plans the same trials with the same
names, and a record the plan does not contain (a hand-edited ``results.json``) is refused.
"""

from __future__ import annotations

import math
from pathlib import Path

from lr_lab.config import CORRECTED, FINDER_RUN, ExperimentConfig
from lr_lab.errors import ResultsError
from lr_lab.results import FinderResult, RunResults
from lr_lab.spec import TrialSpec, lr_orders, trial_name

INIT_FILE = "init.ckpt"
CHECKS = "finder checks"  # the pending entry for checks whose LRs the finder has not yet chosen


def rule_names(cfg: ExperimentConfig) -> list[str]:
    """The rules a run reads off its finder curves, in order (``valley@corrected`` with both)."""
    if not cfg.finder.enabled:
        return []
    names = list(cfg.finder.rules)
    return names + [n + CORRECTED for n in names] if cfg.finder.curve == "both" else names


def seed_dir(run_dir: Path, seed: int) -> Path:
    """The folder of one seed: its ``init.ckpt`` and one TensorBoard run per trial."""
    return run_dir / f"seed{seed}"


def fixed_specs(
    cfg: ExperimentConfig, seed: int, run_dir: Path, threads: int = 1
) -> list[TrialSpec]:
    """The grid trials of one seed."""
    folder = seed_dir(run_dir, seed)
    orders, _ = lr_orders(cfg.trials.lrs)
    init = str(folder / INIT_FILE)
    return [
        TrialSpec(trial_name(lr, order), lr, seed, "fixed", init, str(folder), cfg, (), threads)
        for lr, order in zip(cfg.trials.lrs, orders)
    ]


def check_specs(
    cfg: ExperimentConfig,
    finder: FinderResult,
    run_dir: Path,
    results: RunResults,
    threads: int = 1,
) -> list[TrialSpec]:
    """One ``finder_check`` trial per distinct suggestion not already trained at that LR.

    The grid trials of the finder's seed in ``results`` are those LRs (a suggestion equal to a
    grid LR reads that trial instead).
    """
    folder = seed_dir(run_dir, finder.seed)
    taken = [t.lr for t in results.trials if t.seed == finder.seed and t.role == "fixed"]
    by_lr: dict[float, list[str]] = {}
    for rule, lr in finder.rules.items():
        if lr is not None and not any(math.isclose(lr, t) for t in taken):
            by_lr.setdefault(lr, []).append(rule)
    _, orders = lr_orders(cfg.trials.lrs, list(by_lr))
    return [
        TrialSpec(
            trial_name(lr, order, tuple(rules)),
            lr,
            finder.seed,
            "finder_check",
            str(folder / INIT_FILE),
            str(folder),
            cfg,
            tuple(rules),
            threads,
        )
        for (lr, rules), order in zip(by_lr.items(), orders)
    ]


def check_plan(cfg: ExperimentConfig, results: RunResults, run_dir: Path) -> None:
    """Refuse records the plan does not contain (a hand-appended trial must not be ranked)."""
    planned = {s.key: s for seed in cfg.seed_list for s in fixed_specs(cfg, seed, run_dir)}
    for finder in results.finders:
        if finder.seed not in cfg.seed_list:
            raise ResultsError(
                f"results.json: a finder of seed {finder.seed}, not in this run's seeds"
            )
        planned |= {s.key: s for s in check_specs(cfg, finder, run_dir, results)}
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


def plan_pending(cfg: ExperimentConfig, results: RunResults, run_dir: Path) -> list[str]:
    """What is left to do: trial keys, ``seedN/finder`` and ``seedN/finder checks``."""
    done = {t.key for t in results.trials}
    finders = {f.seed: f for f in results.finders}
    pending = []
    for seed in cfg.seed_list:
        pending += [s.key for s in fixed_specs(cfg, seed, run_dir) if s.key not in done]
        if not cfg.finder.enabled:
            continue
        if seed not in finders:
            pending.append(f"seed{seed}/{FINDER_RUN}")
            if cfg.finder.verify:
                pending.append(f"seed{seed}/{CHECKS}")
        elif cfg.finder.verify:
            checks = check_specs(cfg, finders[seed], run_dir, results)
            pending += [s.key for s in checks if s.key not in done]
    return pending
