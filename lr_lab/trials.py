"""Fixed-learning-rate trials, run one after another: a TrialSpec in, a TrialResult out.

Each trial is a fresh ``Trainer`` on a fresh module loaded from the seed's ``init.ckpt``, fed by a
fresh DataModule of the same seed, so the learning rate is the only difference between trials.
``run_trial`` depends on nothing but its picklable spec, so trials can move to worker processes.

The :class:`LossRecorder` callback is the lab's one observer of training: it keeps the per-step
losses on the device (one host sync per step only for the divergence check), reduces them per
epoch, and writes them to TensorBoard at epoch end.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lr_lab import interrupt
from lr_lab.config import ExperimentConfig
from lr_lab.data import RegressionDataModule
from lr_lab.initial_state import load_initial_state
from lr_lab.model import RegressionModule
from lr_lab.results import TrialResult

# TensorBoard gets at most about this many points per per-step curve (always including step 0).
MAX_STEP_POINTS = 1000


@dataclass(frozen=True)
class TrialSpec:
    """A picklable description of one trial.

    Attributes:
        name: The trial's TensorBoard run name, unique within its seed.
        lr: The learning rate.
        seed: The seed of the data, the data order and the initial checkpoint.
        role: ``"fixed"`` (from the grid) or ``"finder_check"`` (verifying a suggestion).
        init_path: The seed's ``init.ckpt``.
        log_dir: The seed's folder; the trial's TensorBoard run is ``log_dir/name``.
        config: The whole experiment config.
        rules: The finder rules that suggested this LR (finder checks only).
    """

    name: str
    lr: float
    seed: int
    role: str
    init_path: str
    log_dir: str
    config: ExperimentConfig
    rules: tuple[str, ...] = field(default=())


def trial_name(lr: float, rules: tuple[str, ...] = ()) -> str:
    """A TensorBoard run name: ``lr=0.01`` for the grid, ``check_valley_lr=0.012`` for a rule's."""
    return f"check_{'+'.join(rules)}_lr={lr:.3g}" if rules else f"lr={lr:.3g}"


def quiet_lightning() -> None:
    """Silence Lightning's banners, tips and warnings that do not apply to tensor-backed data."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*is smaller than the logging interval.*",
        ".*Total length of .* across ranks is zero.*",
        ".*You defined a `validation_step` but have no `val_dataloader`.*",
        ".*LightningModule.* has parameters that were not used.*",
        ".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def make_trainer(
    cfg: ExperimentConfig,
    *,
    root_dir: Path,
    callbacks: list[L.Callback],
    has_val: bool,
    max_epochs: int,
    max_steps: int = -1,
) -> L.Trainer:
    """A Trainer stripped of what the lab does not use (checkpoints, summaries, progress bars).

    Args:
        cfg: The experiment config (accelerator and devices come from ``cfg.trainer``).
        root_dir: Lightning's ``default_root_dir``.
        callbacks: Callbacks such as the :class:`LossRecorder`.
        has_val: Whether to run validation each epoch.
        max_epochs: Epoch limit.
        max_steps: Step limit (-1 for none).

    Returns:
        The Trainer.
    """
    return L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        max_epochs=max_epochs,
        max_steps=max_steps,
        logger=False,  # the LossRecorder writes each trial's TensorBoard run itself
        callbacks=callbacks,
        default_root_dir=root_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if has_val else 0,
    )


# Optimizer steps per Lightning ``training_step``. Lightning's per-step machinery (loops, hooks,
# progress tracking) costs more than a step of this small net, so a trial module takes several
# mini-batches per call and steps through them itself; the data, their order and the math are the
# same as one batch per call (see ``tests/test_trials.py``), only the overhead is shared.
STEPS_PER_CALL = 16


class ChunkedTraining:
    """Manual optimization over a chunk of mini-batches, for one or more stacked trials.

    A mixin for LightningModules whose ``_train_step(x, y)`` takes one optimizer step and returns
    the loss of each trial *before* the step, shape (K,). After every step the losses are checked
    (the one host sync per step): a trial whose loss is non-finite or above ``divergence_factor``
    times its first loss is marked diverged at that step and handed to ``_on_diverged``; once all
    trials have diverged, training stops at that step.
    """

    n_trials: int
    divergence_factor: float

    def _init_guard(self, n_trials: int, divergence_factor: float) -> None:
        self.n_trials, self.divergence_factor = n_trials, divergence_factor
        self.automatic_optimization = False
        self.optimizer_steps = 0
        self.first_loss: Tensor | None = None
        self.diverged_step: list[int | None] = [None] * n_trials

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _on_diverged(self, mask: Tensor) -> None:
        """Called with the (K,) mask of trials that diverged at this step."""

    def training_step(self, chunk: list[tuple[Tensor, Tensor]], batch_idx: int) -> dict[str, Any]:
        """Step through the chunk; return per-step losses (steps, K) and batch sizes."""
        losses = torch.empty(len(chunk), self.n_trials, device=chunk[0][0].device)
        alive = torch.tensor([s is None for s in self.diverged_step], device=losses.device)
        n_alive = int(sum(s is None for s in self.diverged_step))
        done = len(chunk)
        for i, (x, y) in enumerate(chunk):
            step_losses = self._train_step(x, y).detach()
            losses[i] = step_losses
            if self.first_loss is None:
                self.first_loss = step_losses.clone()
            bad = alive & (
                ~torch.isfinite(step_losses)
                | (step_losses > self.divergence_factor * self.first_loss)
            )
            if bool(bad.any()):  # the one host sync per step
                newly = torch.nonzero(bad).flatten().tolist()
                for k in newly:
                    self.diverged_step[k] = self.optimizer_steps
                alive &= ~bad
                n_alive -= len(newly)
                self._on_diverged(bad)
            self.optimizer_steps += 1
            if n_alive == 0:
                self.trainer.should_stop = True
                done = i + 1
                break
            interrupt.check()  # Ctrl-C / SIGTERM: stop here, between two steps
        return {"losses": losses[:done], "sizes": [len(x) for x, _ in chunk[:done]]}


class TrialModule(ChunkedTraining, RegressionModule):
    """:class:`RegressionModule` for one trial: the same net, loss and optimizer, stepped in chunks.

    Args:
        divergence_factor: See :class:`ChunkedTraining`.
        **kwargs: The :class:`RegressionModule` arguments.
    """

    def __init__(self, divergence_factor: float = 1000.0, **kwargs: Any):
        super().__init__(**kwargs)
        self._init_guard(1, divergence_factor)

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        optimizer = self.optimizers(use_pl_optimizer=False)
        loss = self._loss((x, y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.reshape(1)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Validation loss of one chunk, shape (1,)."""
        return super().validation_step(batch, batch_idx).reshape(1)


class LossRecorder(L.Callback):
    """Records the per-step and per-epoch losses of one or more trials and writes TensorBoard.

    Reads what a :class:`ChunkedTraining` module returns: per-step losses of shape (steps, K),
    which stay on the device until the epoch ends (then one host sync per epoch).

    Args:
        loggers: One TensorBoard logger per trial, in the order of the losses.
        stride: Log every ``stride``-th per-step loss to TensorBoard (step 0 always).
    """

    def __init__(self, loggers: list[TensorBoardLogger], stride: int = 1):
        self.loggers = loggers
        self.stride = max(1, stride)
        k = len(loggers)
        self.train_loss: list[list[float]] = [[] for _ in range(k)]
        self.val_loss: list[list[float]] = [[] for _ in range(k)]
        self.first_batch_sha256 = ""
        self.step = 0
        self._epoch_losses: list[Tensor] = []
        self._epoch_sizes: list[int] = []
        self._val_losses: list[Tensor] = []
        self._val_sizes: list[int] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Hash the very first mini-batch, so trials can prove they saw the same data."""
        if self.step == 0 and not self.first_batch_sha256:
            digest = hashlib.sha256()
            for t in batch[0]:
                digest.update(t.detach().cpu().contiguous().numpy().tobytes())
            self.first_batch_sha256 = digest.hexdigest()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Keep the chunk's per-step losses on the device."""
        self._epoch_losses.append(outputs["losses"])  # (steps in chunk, trials)
        self._epoch_sizes.extend(outputs["sizes"])
        self.step += len(outputs["sizes"])

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the chunk's validation loss(es)."""
        if not trainer.sanity_checking:
            self._val_losses.append(outputs.detach().reshape(-1))
            self._val_sizes.append(len(batch[0]))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Reduce the validation losses to one sample-weighted mean per trial."""
        if trainer.sanity_checking or not self._val_losses:
            return
        means = _weighted_mean(torch.stack(self._val_losses), self._val_sizes).tolist()
        epoch_start = self.step - sum(len(chunk) for chunk in self._epoch_losses)
        for k, value in enumerate(means):
            stop = pl_module.diverged_step[k]
            if stop is None or stop >= epoch_start:  # a copy frozen earlier has no more epochs
                self.val_loss[k].append(value)
        self._val_losses, self._val_sizes = [], []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Reduce the epoch per trial and write its curve to TensorBoard (one host sync)."""
        if not self._epoch_losses:
            return
        diverged_step = pl_module.diverged_step
        per_step = torch.cat(self._epoch_losses)  # (steps, trials)
        first_step = self.step - len(per_step)
        # A frozen copy's losses after its divergence step are not part of its run.
        index = torch.arange(first_step, self.step, device=per_step.device).unsqueeze(1)
        end = [self.step if d is None else d for d in diverged_step]
        mask = index <= torch.tensor(end, device=per_step.device)
        means = _weighted_mean(per_step, self._epoch_sizes, mask=mask).tolist()
        keep = [i for i in range(len(per_step)) if (first_step + i) % self.stride == 0]
        rows = per_step[keep].tolist() if keep else []
        last = self.step - 1
        for k, logger in enumerate(self.loggers):
            stop = diverged_step[k]
            if stop is not None and stop < first_step:
                continue  # diverged in an earlier epoch: its curve ended there
            for i, row in zip(keep, rows):
                if stop is None or first_step + i <= stop:
                    logger.log_metrics({"train/loss": row[k]}, step=first_step + i)
            self.train_loss[k].append(means[k])
            epoch_metrics = {"train/loss_epoch": means[k]}
            if len(self.val_loss[k]) >= len(self.train_loss[k]):
                epoch_metrics["val/loss"] = self.val_loss[k][len(self.train_loss[k]) - 1]
            logger.log_metrics(epoch_metrics, step=last)
        self._epoch_losses, self._epoch_sizes = [], []


class EpochProgress(L.Callback):
    """On a terminal, one self-overwriting line: which trial, which epoch (nothing in logs)."""

    def __init__(self, label: str):
        self.label = label
        self.enabled = sys.stderr.isatty()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Show the epoch about to run."""
        if self.enabled:
            sys.stderr.write(
                f"\r    {self.label}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs} "
            )
            sys.stderr.flush()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Clear the line for the trial's summary."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _weighted_mean(stacked: Tensor, sizes: list[int], mask: Tensor | None = None) -> Tensor:
    """Sample-weighted mean over batches of per-batch mean losses (batches, trials), per trial.

    Batches where ``mask`` (batches, trials) is False are left out of that trial's mean.
    """
    weights = torch.tensor(sizes, dtype=stacked.dtype, device=stacked.device).unsqueeze(1)
    if mask is not None:
        weights = weights * mask
        stacked = torch.where(mask, stacked, torch.zeros_like(stacked))
    return (stacked * weights).sum(0) / weights.sum(0)


def module_kwargs(cfg: ExperimentConfig, input_dim: int, lr: float) -> dict[str, Any]:
    """The :class:`RegressionModule` arguments for ``cfg`` at learning rate ``lr``."""
    return {
        "input_dim": input_dim,
        "hidden_dims": list(cfg.model.hidden_dims),
        "lr": lr,
        "optimizer": cfg.optimizer.name,
        "momentum": cfg.optimizer.momentum,
        "weight_decay": cfg.optimizer.weight_decay,
    }


def build_module(cfg: ExperimentConfig, input_dim: int, lr: float) -> RegressionModule:
    """The plain LightningModule for ``cfg`` at learning rate ``lr`` (weights not yet loaded)."""
    return RegressionModule(**module_kwargs(cfg, input_dim, lr))


def log_stride(cfg: ExperimentConfig, steps_per_epoch: int) -> int:
    """Per-step TensorBoard stride keeping curves near :data:`MAX_STEP_POINTS` points."""
    total = steps_per_epoch * cfg.trials.max_epochs
    return max(1, -(-total // MAX_STEP_POINTS))


def trial_hparams(spec: TrialSpec) -> dict[str, Any]:
    """The hyperparameters shown for a trial in TensorBoard's HParams tab."""
    cfg = spec.config
    return {
        "lr": spec.lr,
        "seed": spec.seed,
        "role": spec.role,
        "rules": ",".join(spec.rules) or "-",
        "optimizer": cfg.optimizer.name,
        "momentum": cfg.optimizer.momentum,
        "batch_size": cfg.data.batch_size,
        "max_epochs": cfg.trials.max_epochs,
        "hidden_dims": str(list(cfg.model.hidden_dims)),
    }


def final_metrics(result: TrialResult) -> dict[str, float]:
    """The metrics the HParams tab shows next to a trial's hyperparameters."""
    metrics = {
        "hparams/final_train_loss": result.final_train_loss,
        "hparams/final_val_loss": result.final_val_loss,
        "hparams/diverged": float(result.diverged),
    }
    return {k: (float("nan") if v is None else v) for k, v in metrics.items()}


def run_trial(spec: TrialSpec) -> TrialResult:
    """Train one learning rate from the seed's initial checkpoint for ``max_epochs``.

    Args:
        spec: What to train.

    Returns:
        The losses per epoch, divergence, timings and the hash of the starting weights.
    """
    cfg = spec.config
    datamodule = RegressionDataModule(cfg.data, spec.seed, steps_per_call=STEPS_PER_CALL)
    module = TrialModule(
        divergence_factor=cfg.trials.divergence_factor,
        **module_kwargs(cfg, datamodule.input_dim, spec.lr),
    )
    init_sha = load_initial_state(Path(spec.init_path), module)
    logger = TensorBoardLogger(spec.log_dir, name="", version=spec.name, default_hp_metric=False)
    return fit_trials([spec], module, datamodule, [logger], init_sha)[0]


def fit_trials(
    specs: list[TrialSpec],
    module: ChunkedTraining,
    datamodule: RegressionDataModule,
    loggers: list[TensorBoardLogger],
    init_sha: str,
) -> list[TrialResult]:
    """Fit ``module`` (one trial, or one stacked copy per spec) and return one result per spec.

    Args:
        specs: The trials the module trains, in the order of its copies.
        module: A :class:`ChunkedTraining` module, its initial weights loaded.
        datamodule: The seed's data.
        loggers: One TensorBoard logger per spec.
        init_sha: The sha256 of the weights every copy started from.

    Returns:
        The results; a shared wall time is split evenly between the specs.
    """
    cfg = specs[0].config
    recorder = LossRecorder(loggers, log_stride(cfg, datamodule.steps_per_epoch))
    label = specs[0].name if len(specs) == 1 else f"{len(specs)} trials, batched"
    trainer = make_trainer(
        cfg,
        root_dir=Path(specs[0].log_dir),
        callbacks=[recorder, EpochProgress(label)],
        has_val=datamodule.has_val,
        max_epochs=cfg.trials.max_epochs,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - start
    steps = [recorder.step if d is None else d + 1 for d in module.diverged_step]
    results = []
    for k, (spec, logger) in enumerate(zip(specs, loggers)):
        result = TrialResult(
            name=spec.name,
            role=spec.role,
            lr=spec.lr,
            seed=spec.seed,
            rules=list(spec.rules),
            init_sha256=init_sha,
            steps=steps[k],
            wall_s=wall / len(specs),
            step_us=1e6 * wall / max(1, sum(steps)),  # per trial-step
            tb_run=str(Path(f"seed{spec.seed}") / spec.name),
        )
        fill_from_recorder(result, recorder, module, k)
        hparams = {**trial_hparams(spec), "batched": len(specs) > 1}
        logger.log_hyperparams(hparams, final_metrics(result))
        logger.finalize("success")
        results.append(result)
    return results


def fill_from_recorder(
    result: TrialResult, recorder: LossRecorder, module: ChunkedTraining, k: int
) -> None:
    """Copy trial ``k``'s measurements from ``recorder`` and ``module`` into ``result``."""
    result.train_loss = recorder.train_loss[k]
    result.val_loss = recorder.val_loss[k]
    result.final_train_loss = result.train_loss[-1] if result.train_loss else None
    result.final_val_loss = result.val_loss[-1] if result.val_loss else None
    result.diverged = module.diverged_step[k] is not None
    result.diverged_step = module.diverged_step[k]
    if module.first_loss is not None:
        result.first_step_loss = float(module.first_loss[k])
    result.first_batch_sha256 = recorder.first_batch_sha256
