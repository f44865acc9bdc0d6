"""Run one trial: a :class:`~lr_lab.training.problem.TrialSpec` in, a ``TrialResult`` out.

Every trial is a fresh ``Trainer`` on a fresh module loaded from the seed's ``init.ckpt``, fed by
a fresh DataModule of the same seed, so the learning rate is the only difference between trials.

- A user's module gets an ordinary Lightning fit (automatic optimization, its own
  ``configure_optimizers`` and schedulers), observed by the :class:`~lr_lab.training.recorder.LossRecorder`.
  ``L.seed_everything(seed)`` runs right before the DataModule is built and again right before
  ``fit``, so the fit is replayable by hand (README, "Replay a trial by hand").
- The built-in model takes the chunked fast path (:mod:`lr_lab.training.chunked`), whose data order
  comes from its own generator; :mod:`lr_lab.training.batched` trains many of its trials at once.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import lightning as L

from lr_lab.analysis.records import TrialResult
from lr_lab.errors import ContractError
from lr_lab.training.baselines import ScheduleFreeModes, swap_optimizer
from lr_lab.training.chunked import STEPS_PER_CALL, TrialModule
from lr_lab.training.contract import ContractCheck, contract_error
from lr_lab.training.divergence import DivergenceGuard
from lr_lab.training.initial_state import load_initial_state
from lr_lab.training.problem import FitSettings, TrialSpec, lr_attribute
from lr_lab.training.recorder import MAX_STEP_POINTS, EpochProgress, LossRecorder, is_lab_module
from lr_lab.training.trainer import apply_threads, make_trainer


def log_stride(fit: FitSettings, steps_per_epoch: int) -> int:
    """Per-step TensorBoard stride keeping curves near ``MAX_STEP_POINTS`` points."""
    total = steps_per_epoch * fit.max_epochs
    if fit.max_steps is not None:
        total = min(total, fit.max_steps)
    return max(1, math.ceil(total / MAX_STEP_POINTS))


def run_trial(spec: TrialSpec, callbacks: list[L.Callback] | None = None) -> TrialResult:
    """Train one learning rate from the seed's initial checkpoint.

    Args:
        spec: What to train.
        callbacks: Observers of this fit (a tuner's :class:`EpochReport`; Lightning's own loop
            runs, as for a user's module).

    Returns:
        The losses per epoch, divergence, timings and the hashes of the starting weights and data.
    """
    problem, fit = spec.problem, spec.fit
    # Clipping, accumulation, another optimizer: Lightning's own loop, as for any module.
    if not (problem.builtin and fit.plain_trainer) or spec.optimizer or callbacks:
        return _run_user_trial(spec, callbacks)
    datamodule = problem.make_data(spec.seed, steps_per_call=STEPS_PER_CALL)
    module = TrialModule(
        divergence_factor=fit.divergence_factor, lr=spec.lr, **asdict(problem.builtin_model)
    )
    init_sha = load_initial_state(Path(spec.init_path), module)
    apply_threads(spec.threads)
    stride = log_stride(fit, datamodule.steps_per_epoch)
    recorder = LossRecorder([str(spec.run_dir)], module.guard, fit.metric, stride)
    return fit_and_collect([spec], module, datamodule, recorder, init_sha)[0]


def _run_user_trial(spec: TrialSpec, callbacks: list[L.Callback] | None = None) -> TrialResult:
    problem, fit = spec.problem, spec.fit
    module = problem.make_model(spec.lr)
    dropped, extra = (lambda: False), []
    if spec.optimizer:  # a baseline: the module's parameters, an LR-free optimizer
        dropped = swap_optimizer(module, spec.optimizer)
        extra.append(ScheduleFreeModes())
    init_sha = load_initial_state(Path(spec.init_path), module)
    apply_threads(spec.threads)
    L.seed_everything(spec.seed, verbose=False)
    datamodule = problem.make_data(spec.seed)
    guard = DivergenceGuard(1, fit.divergence_factor)
    recorder = LossRecorder([str(spec.run_dir)], guard, fit.metric)
    attribute = lr_attribute(module) or "lr"
    lr = None if spec.optimizer else spec.lr  # a baseline's optimizer has its own LR
    check = ContractCheck(lr, attribute, fit.metric, set(module.state_dict()))
    L.seed_everything(spec.seed, verbose=False)
    try:
        (result,) = fit_and_collect([spec], module, datamodule, recorder, init_sha,
                                    [check, *extra], callbacks)  # fmt: skip
    except Exception as err:
        if (broken := contract_error(module, err)) is None:
            raise
        raise broken from err
    if dropped():
        result.note = "the module's scheduler dropped"
    if result.steps == 0:
        raise ContractError(
            f"{type(datamodule).__qualname__}.train_dataloader() gave no batches (drop_last with "
            f"a batch_size larger than the data?)"
        )
    return result


class EpochReport(L.Callback):
    """Hands each epoch's metric, as the trial records it, to ``report``; stops when it says so.

    A tuner's pruning (Optuna's ``trial.report`` / ``should_prune``) sees exactly the numbers of
    the trial's record, so a resumed run can replay its decisions from ``results.json``.
    """

    def __init__(self, report: Callable[[int, float], bool]):
        self.report, self.seen, self.stopped = report, 0, False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report the epoch the recorder just closed (none when it diverged)."""
        recorder = next(c for c in trainer.callbacks if isinstance(c, LossRecorder))
        history = recorder.val_loss[0] or recorder.train_loss[0]
        if len(history) > self.seen:
            self.seen = len(history)
            if self.report(self.seen - 1, history[-1]):
                trainer.should_stop = self.stopped = True


class StopAfterEpochs(L.Callback):
    """Stops a fit after ``epochs`` epochs.

    The Trainer's ``max_epochs`` (and so a schedule's length) stays the full budget's: a race
    trial is exactly the first epochs of the full trial at its LR.
    """

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop once the budget's epochs are done."""
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def fit_and_collect(
    specs: list[TrialSpec],
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    recorder: LossRecorder,
    init_sha: str,
    checks: list[L.Callback] | None = None,
    observers: list[L.Callback] | None = None,
) -> list[TrialResult]:
    """Fit ``module`` (one trial, or one stacked copy per spec) and return one result per spec.

    Args:
        specs: The trials the module trains, in the order of its copies.
        module: The module, its initial weights loaded.
        datamodule: The seed's data.
        recorder: The observer (its guard is the module's, for a lab module).
        init_sha: The sha256 of the weights every copy started from.
        checks: Callbacks before the recorder (a user module's
            :class:`~lr_lab.contract.ContractCheck`).
        observers: Callbacks after it, which read what it recorded (:class:`EpochReport`).

    Returns:
        The results; a shared wall time is split evenly between the specs.
    """
    fit = specs[0].fit
    label = specs[0].name if len(specs) == 1 else f"{len(specs)} trials, batched"
    stop = [StopAfterEpochs(specs[0].stop_epochs)] if specs[0].stop_epochs else []
    trainer = make_trainer(
        fit.trainer,
        root_dir=Path(specs[0].log_dir),
        # Every callback costs on every hook of every step: the progress line only on a terminal.
        callbacks=[*(checks or []), recorder, *(observers or []), *stop]
        + ([EpochProgress(label)] if sys.stderr is not None and sys.stderr.isatty() else []),
        max_epochs=fit.max_epochs,
        max_steps=fit.max_steps,
        logger=None if is_lab_module(module) else recorder.logger,
        has_val=getattr(datamodule, "has_val", None),  # the built-in data may hold out nothing
    )
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule)
    finally:
        recorder.close()
    wall = time.perf_counter() - start
    guard = recorder.guard
    steps = [recorder.step if d is None else d + 1 for d in guard.step]
    results = []
    for k, spec in enumerate(specs):
        result = TrialResult(
            name=spec.name,
            role=spec.role,
            lr=spec.lr,
            seed=spec.seed,
            rules=list(spec.rules),
            rung=spec.rung,
            stop_epochs=spec.stop_epochs,
            optimizer=spec.optimizer or "",
            init_sha256=init_sha,
            steps=steps[k],
            global_step=trainer.global_step,
            wall_s=wall / len(specs),
            step_us=1e6 * wall / max(1, sum(steps)),  # per trial-step
            tb_run=spec.key,
            batched=len(specs) > 1,
            threads=spec.threads,
            train_loss=recorder.train_loss[k],
            val_loss=recorder.val_loss[k],
            diverged=guard.step[k] is not None,
            diverged_step=guard.step[k],
            diverged_reason=guard.reason[k],
            first_step_loss=float(guard.first[k]) if guard.first is not None else None,
            first_batch_sha256=recorder.first_batch_sha256,
            metrics=recorder.metrics if len(specs) == 1 else {},
        )
        result.final_train_loss = (
            None if result.diverged or not result.train_loss else result.train_loss[-1]
        )
        result.final_val_loss = (
            None if result.diverged or not result.val_loss else result.val_loss[-1]
        )
        results.append(result)
    return results
