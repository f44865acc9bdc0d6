"""The LR-free optimizers a run can train beside its search, at their documented defaults.

``pip install -e ".[peers]"``. Each baseline trains the module's own parameters from the seed's
``init.ckpt`` with the trials' data order and epochs; only ``configure_optimizers`` changes: it
returns the baseline's optimizer over ``module.parameters()`` (a user's scheduler, if any, is
dropped, and the trial says so). The packages are used as their authors document them:

- ``prodigy``: ``prodigyopt.Prodigy(params)``, lr 1.0 (a multiplier of the step it learns);
- ``dadapt_adam`` / ``dadapt_sgd``: ``dadaptation.DAdaptAdam`` / ``DAdaptSGD(params)``, lr 1.0;
- ``schedulefree_adamw``: ``schedulefree.AdamWScheduleFree(params)``, lr 0.0025 (a real LR:
  Schedule-Free drops the schedule, not the LR), with ``optimizer.train()`` before each step and
  ``optimizer.eval()`` for validation (:class:`ScheduleFreeModes`);
- ``dog``: ``dog.DoG(params)``, lr 1.0 (without the iterate averaging its README recommends:
  the lab evaluates the weights it trains, as for every other optimizer);
- ``cocob``: ``parameterfree.COCOB(params)`` (no LR at all).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import lightning as L

from lr_lab.config.baselines import OPTIMIZERS, PACKAGES
from lr_lab.errors import UsageError


def optimizer_class(name: str) -> type:
    """The baseline's optimizer class (imported on use)."""
    module, cls, _ = OPTIMIZERS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError:
        raise UsageError(
            f'baselines: {name} needs {PACKAGES[module]}: pip install -e ".[peers]"'
        ) from None


def swap_optimizer(module: L.LightningModule, name: str) -> Callable[[], bool]:
    """Make ``module`` train with the baseline ``name`` at its defaults.

    Returns:
        A function that says, once the fit started, whether the module's own
        ``configure_optimizers`` returned a scheduler (now dropped).
    """
    cls = optimizer_class(name)
    original = type(module).configure_optimizers
    dropped = [False]

    def configure_optimizers(self: L.LightningModule) -> Any:
        own = original(self)  # what the module would train with: its scheduler is dropped
        dropped[0] = _has_scheduler(own)
        return cls(self.parameters())

    module.configure_optimizers = configure_optimizers.__get__(module)
    return lambda: dropped[0]


def _has_scheduler(configured: Any) -> bool:
    if isinstance(configured, dict):
        return configured.get("lr_scheduler") is not None
    if isinstance(configured, (list, tuple)) and len(configured) == 2:
        return bool(configured[1])
    return False


class ScheduleFreeModes(L.Callback):
    """Schedule-Free's ``optimizer.train()`` before each step, ``eval()`` for evaluation.

    Its weights are an average in evaluation mode and the point it steps from in training mode;
    ``step()`` refuses to run in evaluation mode. A no-op for every other optimizer.
    """

    @staticmethod
    def _schedule_free(trainer: L.Trainer) -> list[Any]:
        return [o for o in trainer.optimizers if "train_mode" in o.param_groups[0]]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        """Training mode for the step."""
        for optimizer in self._schedule_free(trainer):
            optimizer.train()

    def _eval(self, trainer: L.Trainer, *args: Any) -> None:
        for optimizer in self._schedule_free(trainer):
            optimizer.eval()

    on_validation_start = on_train_epoch_end = on_train_end = _eval
