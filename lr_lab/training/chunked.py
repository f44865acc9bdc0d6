"""The built-in model's fast sequential path: several optimizer steps per Lightning call.

A small net's step is cheaper than Lightning's per-call machinery (loops, hooks, progress), so a
lab module takes ``STEPS_PER_CALL`` mini-batches per ``training_step`` and steps through them with
Lightning's manual optimization (``self.optimizers()``, ``optimizer.step()``; ``loss.backward()``,
as this path runs only on a plain Trainer): every step is counted in ``trainer.global_step``,
``max_steps`` stops a trial mid-chunk, and the data, order and math are those of one batch per
call (``tests/test_trials.py``). Only the per-call overhead is shared.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lr_lab import interrupt
from lr_lab.training.divergence import DivergenceGuard
from lr_lab.training.model import RegressionModule

# Optimizer steps per Lightning ``training_step`` (see the module docstring).
STEPS_PER_CALL = 16


class ChunkedTraining:
    """Manual optimization over a chunk of mini-batches, for one or more stacked trials.

    A mixin for LightningModules whose ``_train_step(x, y)`` takes one optimizer step and returns
    the loss of each trial *before* the step, shape (K,). After every step the shared
    :class:`~lr_lab.recorder.DivergenceGuard` checks the losses (the one host sync per step);
    diverged trials go to ``_on_diverged``; once all have diverged, training stops at that step.
    """

    lr_lab_chunked = True  # the recorder reads this module's outputs as (steps, K) losses
    guard: DivergenceGuard

    def _init_guard(self, n_trials: int, divergence_factor: float) -> None:
        self.automatic_optimization = False
        self.guard = DivergenceGuard(n_trials, divergence_factor)

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _on_diverged(self, mask: Tensor) -> None:
        """Called with the (K,) mask of trials that diverged at this step."""

    def training_step(self, chunk: list[tuple[Tensor, Tensor]], batch_idx: int) -> dict[str, Any]:
        """Step through the chunk; return per-step losses (steps, K) and batch sizes."""
        guard, trainer = self.guard, self.trainer
        losses = torch.empty(len(chunk), guard_size(guard), device=chunk[0][0].device)
        max_steps = trainer.max_steps
        done = len(chunk)
        for i, (x, y) in enumerate(chunk):
            losses[i] = self._train_step(x, y).detach()
            newly = guard.check(losses[i])
            if newly is not None:
                self._on_diverged(newly)
            if guard.n_alive == 0:
                trainer.should_stop = True
                done = i + 1
                break
            if 0 <= max_steps <= trainer.global_step:
                done = i + 1
                break
            interrupt.check()  # Ctrl-C / SIGTERM: stop here, between two steps
        return {"losses": losses[:done], "sizes": [len(x) for x, _ in chunk[:done]]}


def guard_size(guard: DivergenceGuard) -> int:
    """K, the number of trials a guard watches."""
    return len(guard.step)


class TrialModule(ChunkedTraining, RegressionModule):
    """:class:`RegressionModule` for one trial: the same net, loss and optimizer, stepped in chunks.

    Args:
        divergence_factor: ``trials.divergence_factor``.
        **kwargs: The :class:`RegressionModule` arguments.
    """

    def __init__(self, divergence_factor: float = 1000.0, **kwargs: Any):
        super().__init__(**kwargs)
        self._init_guard(1, divergence_factor)

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        optimizer = self.optimizers()
        loss = self._loss((x, y))
        optimizer.zero_grad(set_to_none=True)
        # loss.backward(), not manual_backward(): this path runs only on the plain Trainer (no
        # precision plugin, strategy or callback of the user's: run_trial sends those through
        # Lightning's own loop), where manual_backward adds nothing but two hook dispatches per
        # step, a fifth of a small net's step (scripts/bench.py). optimizer.step() stays
        # Lightning's: it counts the step in trainer.global_step.
        loss.backward()
        optimizer.step()
        return loss.reshape(1)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Validation loss of one chunk, shape (1,) (the recorder reads it; nothing is logged)."""
        return self._loss(batch).reshape(1)
