"""The plan of a run: which trials each seed trains, what is left, and what does not belong.

Pure functions of the config and the records: a resumed run plans the same trials with the same
names, and a record the plan does not contain (a hand-edited ``results.json``) is refused.
"""

from __future__ import annotations

import math

from lr_lab.analysis.records import INIT_FILE, FinderResult, seed_dir
from lr_lab.analysis.results import RunResults
from lr_lab.config.schema import CORRECTED, FINDER_RUN, ExperimentConfig
from lr_lab.errors import ResultsError
from lr_lab.experiment.peers import OPTUNA, baseline_trials, optuna_of_seed
from lr_lab.experiment.search import SEARCH, next_trials, planned_keys
from lr_lab.experiment.trials import Planned, trial_name

__all__ = ["INIT_FILE", "seed_dir"]  # where a run's seeds keep their files (analysis.results)

CHECKS = "finder checks"  # the pending entry for checks whose LRs the finder has not yet chosen


def rule_names(cfg: ExperimentConfig) -> list[str]:
    """The rules a run reads off its finder curves, in order (``valley@corrected`` with both)."""
    if not cfg.finder.enabled:
        return []
    names = list(cfg.finder.rules)
    return names + [n + CORRECTED for n in names] if cfg.finder.curve == "both" else names


def fixed_trials(cfg: ExperimentConfig, seed: int) -> list[Planned]:
    """The grid trials of one seed."""
    return [Planned(trial_name(lr), lr, seed, "fixed") for lr in cfg.trials.lrs]


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
    return [
        Planned(trial_name(lr, "+".join(rules)), lr, finder.seed, "finder_check", tuple(rules))
        for lr, rules in by_lr.items()
    ]


def check_plan(cfg: ExperimentConfig, results: RunResults) -> None:
    """Refuse records the plan does not contain (a hand-appended trial must not be ranked)."""
    planned = {
        s.key: s
        for seed in cfg.seed_list
        for s in fixed_trials(cfg, seed) + baseline_trials(cfg, seed)
    }
    for finder in results.finders:
        if finder.seed not in cfg.seed_list:
            raise ResultsError(
                f"results.json: a finder of seed {finder.seed}, not in this run's seeds"
            )
        planned |= {s.key: s for s in check_trials(cfg, finder, results)}
        if searching(cfg):
            seed_trials = [t for t in results.trials if t.seed == finder.seed]
            planned |= planned_keys(cfg, finder, seed_trials, cfg.metric_mode)
            if OPTUNA in cfg.baselines:  # what Optuna, replayed, asked for
                planned |= optuna_of_seed(cfg, results, finder)[1]
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
        if (trial.lr, trial.role, trial.stop_epochs) != (spec.lr, spec.role, spec.epochs):
            raise ResultsError(
                f"results.json: trial {trial.key} is recorded as {trial.role} at lr {trial.lr!r}; "
                f"its plan says {spec.role} at lr {spec.lr!r} (edited?); start a new run"
            )
        if keys.count(trial.key) > 1:
            raise ResultsError(f"results.json: trial {trial.key} is recorded twice")


def searching(cfg: ExperimentConfig) -> bool:
    """Whether the run searches (the finder runs, and the search is on)."""
    return cfg.finder.enabled and cfg.search.enabled


def plan_pending(
    cfg: ExperimentConfig, results: RunResults, also: tuple[str, ...] | list[str] = ()
) -> list[str]:
    """What is left to do: trial keys and ``seedN/`` finder, finder checks, search, optuna.

    ``also``: a trial about to start, listed first.
    """
    done = {t.key for t in results.trials}
    finders = {f.seed: f for f in results.finders}
    pending = list(also)
    for seed in cfg.seed_list:
        planned = fixed_trials(cfg, seed) + baseline_trials(cfg, seed)
        pending += [s.key for s in planned if s.key not in done]
        if OPTUNA in cfg.baselines and not any(
            b.seed == seed and b.name == OPTUNA for b in results.baselines
        ):
            pending.append(f"seed{seed}/{OPTUNA}")
        if not cfg.finder.enabled:
            continue
        if seed not in finders:
            pending.append(f"seed{seed}/{FINDER_RUN}")
            if cfg.finder.verify:
                pending.append(f"seed{seed}/{CHECKS}")
        elif cfg.finder.verify:
            checks = check_trials(cfg, finders[seed], results)
            pending += [s.key for s in checks if s.key not in done]
        if not searching(cfg):
            continue
        if seed not in finders:
            pending.append(f"seed{seed}/{SEARCH}")
            continue
        seed_trials = [t for t in results.trials if t.seed == seed]
        step, _ = next_trials(cfg, finders[seed], seed_trials, cfg.metric_mode)
        if step:  # this step's trials, and perhaps more rungs after them
            pending += [p.key for p in step if p.key not in done] + [f"seed{seed}/{SEARCH}"]
    return pending
