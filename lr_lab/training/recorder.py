"""The lab's one observer of training: losses per step and epoch, divergence, TensorBoard.

:class:`LossRecorder` is a Lightning callback that works with any LightningModule. It reads the
loss each ``training_step`` returned (one optimizer step), or the per-step losses of a chunked or
stacked module (several steps and trials per call, see :mod:`lr_lab.training.chunked`); keeps them on the
device until the epoch ends; reads the validation metric the module logged (or the losses a lab
module returned); and writes each trial's TensorBoard run. :class:`DivergenceGuard` decides, after
every optimizer step, which trials diverged (:mod:`lr_lab.training.divergence`).
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lr_lab import interrupt
from lr_lab.errors import ContractError
from lr_lab.training.divergence import DivergenceGuard
from lr_lab.training.events import ScalarLog
from lr_lab.training.logger import TrialLogger

# TensorBoard gets at most about this many points per per-step curve (always including step 0).
MAX_STEP_POINTS = 1000
# One "loss" group, first in TensorBoard's alphabetical list: every trial overlaid per card.
TAG_TRAIN_STEP = "loss/train"  # each optimizer step's loss
TAG_TRAIN_EPOCH = "loss/train_epoch"  # the epoch's sample-weighted mean (results.json train_loss)
TAG_VAL = "loss/val"  # the validation metric per epoch (results.json val_loss)


def _tensors(batch: Any) -> list[Tensor]:
    """The tensors in a batch (tuple, list, dict or tensor), in a fixed order."""
    if isinstance(batch, Tensor):
        return [batch]
    if isinstance(batch, Mapping):
        return [t for k in sorted(batch, key=str) for t in _tensors(batch[k])]
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return [t for item in batch for t in _tensors(item)]
    return []


def batch_sha256(batch: Any) -> str:
    """The sha256 of a batch's tensors (shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for t in _tensors(batch):
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _batch_size(batch: Any) -> int:
    from lightning.pytorch.utilities.data import extract_batch_size

    try:
        return int(extract_batch_size(batch))
    except Exception:  # no tensor to read a size from: count the step once
        return 1


def _weighted_mean(stacked: Tensor, sizes: list[int], mask: Tensor) -> Tensor:
    """Sample-weighted mean over batches of per-batch losses (batches, K), where ``mask`` holds."""
    weights = torch.tensor(sizes, dtype=stacked.dtype, device=stacked.device).unsqueeze(1) * mask
    values = torch.where(mask, stacked, torch.zeros_like(stacked))
    return (values * weights).sum(0) / weights.sum(0)


class LossRecorder(L.Callback):
    """Records the per-step and per-epoch losses of K trials and writes their TensorBoard runs.

    With a lab module (``outputs`` a dict holding ``"losses"`` of shape (steps, K)) the module
    checks divergence itself, mid-chunk, with the shared ``guard``. With any other module
    (``outputs`` the loss, or a dict with ``"loss"``) this callback checks it after each step and
    stops the fit (``trainer.should_stop``) when the trial diverges. Validation: a lab module's
    returned losses, else ``trainer.callback_metrics[metric]``.

    A diverged trial's curves end at the step before its divergence: its absurd loss, and the
    epoch it was in, are never written.

    Args:
        run_dirs: One TensorBoard run folder per trial.
        guard: The divergence guard (shared with a lab module).
        metric: The validation metric a user's module logs.
        stride: Write every ``stride``-th per-step loss (step 0 always).
    """

    def __init__(self, run_dirs: list[str], guard: DivergenceGuard, metric: str, stride: int = 1):
        self.run_dirs, self.guard, self.metric = run_dirs, guard, metric
        self.stride = max(1, stride)
        k = len(run_dirs)
        self.train_loss: list[list[float]] = [[] for _ in range(k)]
        self.val_loss: list[list[float]] = [[] for _ in range(k)]
        self.first_batch_sha256 = ""
        self.step = 0  # optimizer steps seen
        self.logs = [ScalarLog(d) for d in run_dirs]
        # A user's module: what it logs itself goes to its run too (one trial, one logger).
        self.logger = TrialLogger(self.logs[0]) if len(run_dirs) == 1 else None
        self.metrics: dict[str, list[float]] = {}  # each validation metric per epoch (one trial)
        self._val_metrics: dict[str, float] = {}
        self._losses: list[Tensor] = []
        self._sizes: list[int] = []
        self._val: list[float] | None = None
        self._val_chunks: list[Tensor] = []
        self._val_sizes: list[int] = []

    def close(self) -> None:
        """Flush and close the TensorBoard runs."""
        for log in self.logs:
            log.close()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        """Hash the very first mini-batch, so trials can prove they saw the same data."""
        if not self.first_batch_sha256:
            lab_chunk = isinstance(batch, list) and is_lab_module(pl_module)
            self.first_batch_sha256 = batch_sha256(batch[0] if lab_chunk else batch)
        interrupt.check()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        """Keep this call's per-step losses on the device; check a user module's step."""
        if isinstance(outputs, Mapping) and "losses" in outputs:  # a lab module: (steps, K)
            self._losses.append(outputs["losses"])
            self._sizes.extend(outputs["sizes"])
            self.step += len(outputs["sizes"])
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ContractError(
                f"{type(pl_module).__qualname__}.training_step returned {_describe(loss)} at step "
                f"{self.step}: it must return the loss (a scalar tensor, or a dict with 'loss')"
            )
        loss = loss.detach().reshape(1).float()
        self._losses.append(loss.reshape(1, 1))
        self._sizes.append(_batch_size(batch))
        self.step += 1
        if self.guard.check(loss) is not None:
            trainer.should_stop = True
        interrupt.check()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int, j: int = 0
    ) -> None:
        """A lab module returns its validation losses, shape (K,): keep them."""
        if not trainer.sanity_checking and is_lab_module(pl_module) and outputs is not None:
            self._val_chunks.append(outputs.detach().reshape(-1))
            self._val_sizes.append(len(batch[0]))

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The module's metrics logged from here on are this validation's."""
        if self.logger is not None:
            self.logger.validating, self.logger.validation = True, {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Reduce the epoch's validation: a lab module's losses, or the metric logged."""
        if self.logger is not None:
            self.logger.validating = False
            self._val_metrics = dict(self.logger.validation)
        if trainer.sanity_checking:
            return
        if self._val_chunks:
            chunks = torch.stack(self._val_chunks)
            every = torch.ones_like(chunks, dtype=torch.bool)
            self._val = _weighted_mean(chunks, self._val_sizes, every).tolist()
            self._val_chunks, self._val_sizes = [], []
            return
        if is_lab_module(pl_module):
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if not k.startswith("train"))
            raise ContractError(
                f"metric = {self.metric!r} was not logged by validation in epoch "
                f"{trainer.current_epoch}: {type(pl_module).__qualname__}.validation_step must "
                f"self.log({self.metric!r}, ...) every epoch (validation logged {logged})"
            )
        self._val = [float(value)]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Reduce the epoch per trial and write its curves to TensorBoard (one host sync)."""
        if not self._losses:
            return
        if self._val is not None:
            self._check_validation(trainer, pl_module)
        per_step = torch.cat(self._losses)  # (steps, K)
        first = self.step - len(per_step)
        # Each trial's steps before its divergence; the epoch it diverged in is not an epoch.
        ends = [self.step if d is None else d for d in self.guard.step]
        index = torch.arange(first, self.step, device=per_step.device).unsqueeze(1)
        mask = index < torch.tensor(ends, device=per_step.device)
        means = _weighted_mean(per_step, self._sizes, mask).tolist()
        keep = [i for i in range(len(per_step)) if (first + i) % self.stride == 0]
        rows = per_step[keep].tolist() if keep else []
        for k, log in enumerate(self.logs):
            for i, row in zip(keep, rows):
                if first + i < ends[k]:
                    log.add(TAG_TRAIN_STEP, row[k], first + i)
            if self.guard.step[k] is not None:
                continue  # diverged in this epoch (or before): no epoch metrics
            self.train_loss[k].append(means[k])
            log.add(TAG_TRAIN_EPOCH, means[k], self.step - 1)
            if self._val is not None:
                self.val_loss[k].append(self._val[k])
                for name, value in self._val_metrics.items():
                    self.metrics.setdefault(name, []).append(value)
                log.add(TAG_VAL, self._val[k], self.step - 1)
        for log in self.logs:
            log.flush()
        self._losses, self._sizes, self._val, self._val_metrics = [], [], None, {}

    def _check_validation(self, trainer: L.Trainer, pl_module: Any) -> None:
        """A non-finite validation metric is a divergence (after the epoch's last step)."""
        lab = is_lab_module(pl_module)
        for k, value in enumerate(self._val):
            if self.guard.step[k] is None and not math.isfinite(value):
                name = "the validation loss" if lab else self.metric
                reason = (
                    f"{name} {value} after epoch {trainer.current_epoch} (step {self.step - 1})"
                )
                mask = self.guard.mark(k, self.step - 1, reason)
                if lab:
                    pl_module._on_diverged(mask)
        if self.guard.n_alive == 0:
            trainer.should_stop = True


def is_lab_module(module: Any) -> bool:
    """Whether ``module`` is one of the lab's chunked modules (see :mod:`lr_lab.training.chunked`)."""
    return getattr(type(module), "lr_lab_chunked", False)


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


class EpochProgress(L.Callback):
    """On a terminal, one self-overwriting line: which trial, which epoch (nothing in logs)."""

    def __init__(self, label: str):
        self.label = label
        self.enabled = sys.stderr is not None and sys.stderr.isatty()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Show the epoch about to run."""
        if self.enabled:
            sys.stderr.write(
                f"\r    {self.label}: epoch {trainer.current_epoch + 1}/{trainer.max_epochs} "
            )
            sys.stderr.flush()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Clear the line for the trial's summary."""
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
