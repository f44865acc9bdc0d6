"""The peers a user would pick instead of the search, trained on the same footing (``baselines``).

- The LR-free optimizers (``prodigy``, ``dadapt_adam``, ...): one full-budget trial each, the
  module's parameters from the seed's ``init.ckpt``, the trials' data order, epochs and metric;
  only the optimizer is theirs, at its documented defaults (:mod:`lr_lab.training.baselines`).
- ``optuna``: Optuna's TPE sampler over log LR with its successive-halving pruner, given the
  search's steps on that seed (finder, race and winner): its trials run while steps are left,
  each pruned at an epoch's end when Optuna says so, the last one cut where the budget ends. Its
  answer is its best trial that trained the full budget. Each of its trials is an ordinary trial
  of the run (a TensorBoard run and a record); a resumed run replays the study from the records
  (Optuna asks again and is told the recorded values), so it continues where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lr_lab.analysis.measure import Measure
from lr_lab.analysis.records import BaselineResult, FinderResult, SearchResult, TrialResult
from lr_lab.analysis.results import RunResults
from lr_lab.config.baselines import OPTIMIZERS, OPTUNA
from lr_lab.config.schema import ExperimentConfig
from lr_lab.errors import ResultsError
from lr_lab.experiment.trials import Planned, trial_name

BASELINE = "baseline"
STARTUP_TRIALS = 3  # TPE's random start (its default 10 would be the whole budget: random search)
REDUCTION = 3  # the pruner's keep-one-in-3 (the search's eta)

# Train a planned trial with this epoch observer; returns its record (written by the caller).
Train = Callable[[Planned, Callable[[int, float], bool]], TrialResult]


def baseline_trials(cfg: ExperimentConfig, seed: int) -> list[Planned]:
    """One full-budget trial per LR-free optimizer in ``baselines`` (``baseline_prodigy``)."""
    return [
        Planned(f"{BASELINE}_{name}", OPTIMIZERS[name][2], seed, BASELINE, optimizer=name)
        for name in cfg.baselines
        if name != OPTUNA
    ]


def baseline_records(
    cfg: ExperimentConfig, seed: int, trials: list[TrialResult]
) -> list[BaselineResult]:
    """The LR-free optimizers' records of one seed, from their trials."""
    done = {t.key: t for t in trials}
    out = []
    for p in baseline_trials(cfg, seed):
        t = done.get(p.key)
        if t is not None:
            out.append(BaselineResult(seed, p.optimizer or "", t.key, t.lr, t.steps, note=t.note))
    return out


def _range(cfg: ExperimentConfig, finder_range: tuple[float, float]) -> tuple[float, float]:
    """Optuna's LR range: the grid's span (the user's own prior), else the finder's."""
    lrs = sorted(cfg.trials.lrs)
    return (lrs[0], lrs[-1]) if len(lrs) > 1 else finder_range


def run_optuna(
    cfg: ExperimentConfig,
    search: SearchResult,
    full_steps: int,
    trials: list[TrialResult],
    finder_range: tuple[float, float],
    train: Train | None,
) -> tuple[BaselineResult, dict[str, Planned]]:
    """Optuna's study on one seed: replayed from ``trials``, continued with ``train``.

    Args:
        cfg: The run's config (metric direction, epochs, grid range).
        search: The seed's finished search: its steps are Optuna's budget.
        full_steps: The steps of one full-budget trial (the search winner's).
        trials: The seed's finished trials (Optuna's among them, replayed in order).
        finder_range: The finder's LR range (Optuna's when there is no grid).
        train: Trains a new trial; None only replays (what the plan accepts).

    Returns:
        Optuna's record on the seed, and every trial it planned, by key.

    Raises:
        ResultsError: A recorded Optuna trial is not the one Optuna asks for (edited).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    mode = cfg.metric_mode if any(t.val_loss for t in trials) else "min"
    measure = Measure(mode)
    seed, epochs = search.seed, cfg.trials.max_epochs
    budget = search.steps + full_steps
    study = optuna.create_study(
        study_name=f"lr_lab_seed{seed}",
        direction="minimize" if mode == "min" else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION),
    )
    low, high = _range(cfg, finder_range)
    space = {"lr": optuna.distributions.FloatDistribution(low, high, log=True)}
    recorded = {t.name: t for t in trials if t.role == OPTUNA}
    planned: dict[str, Planned] = {}
    done: list[TrialResult] = []
    record = BaselineResult(seed, OPTUNA, trials=0, budget=budget)
    per_epoch = max(1, full_steps // max(1, epochs))
    while (left := (budget - record.steps) // per_epoch) >= 1:
        trial = study.ask(space)
        lr = trial.params["lr"]
        cap = min(epochs, left)
        p = Planned(trial_name(lr, f"optuna{trial.number}"), lr, seed, OPTUNA,
                    epochs=cap if cap < epochs else None)  # fmt: skip
        ran = recorded.pop(p.name, None)
        if ran is None and any(n.endswith(f"_optuna{trial.number}") for n in recorded):
            raise ResultsError(
                f"results.json: Optuna's trial {trial.number} of seed {seed} is recorded at "
                f"another LR than Optuna asks for ({lr:.6g}; edited?); start a new run"
            )

        def report(epoch: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        if ran is None:
            if train is None:
                planned[f"seed{seed}/{p.name}"] = p
                break
            ran = train(p, report)
        else:  # the same reports, the same pruning decisions, as when it trained
            for epoch, value in enumerate(_history(ran)[: ran.stop_epochs or epochs]):
                if report(epoch, value):
                    break
        planned[f"seed{seed}/{p.name}"] = Planned(p.name, lr, seed, OPTUNA, epochs=ran.stop_epochs)
        done.append(ran)
        record.steps += ran.steps
        record.trials += 1
        finished = ran.stop_epochs is None and not ran.diverged and ran.final_loss is not None
        if finished:
            study.tell(trial, ran.final_loss)
        elif ran.diverged:
            study.tell(trial, math.inf if mode == "min" else -math.inf)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    full = [
        t for t in done if t.stop_epochs is None and not t.diverged and t.final_loss is not None
    ]
    if full:
        best = min(full, key=lambda t: measure.key(t.final_loss))
        record.trial, record.lr = best.key, best.lr
    else:
        record.note = "no trial of Optuna's trained the full budget"
    return record, planned


def _history(trial: TrialResult) -> list[float]:
    return list(trial.val_loss if trial.val_loss else trial.train_loss)


def optuna_of_seed(
    cfg: ExperimentConfig, results: RunResults, finder: FinderResult, train: Train | None = None
) -> tuple[BaselineResult | None, dict[str, Planned]]:
    """:func:`run_optuna` on the finder's seed, once its search has a winner (else None)."""
    search = next((s for s in results.searches if s.seed == finder.seed), None)
    keys = {t.key: t for t in results.trials}
    if search is None or search.trial not in keys or not finder.lr:
        return None, {}
    seed_trials = [t for t in results.trials if t.seed == finder.seed]
    full_steps = keys[search.trial].steps
    return run_optuna(cfg, search, full_steps, seed_trials, (finder.lr[0], finder.lr[-1]), train)
