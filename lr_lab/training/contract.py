"""The contract a user's module keeps, checked at the moment a fit reveals each part of it.

Before the run folder exists, :mod:`lr_lab.training.classes` checks what a class shows after ``__init__``
(it imports, takes its ``init_args``, has an LR attribute). The rest only a fit can show, and
breaking it would not crash: it would make the comparison silently wrong. :class:`ContractCheck`
stops the trial with a one-line :class:`~lr_lab.errors.ContractError` (exit 2) when

- ``configure_optimizers`` returns no optimizer, or one that does not train at the LR the lab set
  (a hard-coded LR gives every trial the same loss; the finder's axis is the optimizer's LR);
- the module makes parameters after ``__init__`` (``setup``): ``init.ckpt`` would not hold them;
- ``training_step`` returns a loss that is not a scalar;
- the metric was not logged by this epoch's validation (a value left by ``training_step`` or an
  earlier epoch would be ranked as if it were this epoch's validation).

Lightning's own checks of a module (a dict without ``"loss"``, two optimizers, an unknown
``configure_optimizers`` return) raise ``MisconfigurationException`` or ``RuntimeError`` inside
``fit``; :func:`contract_error` turns those into the same one line.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from torch import Tensor

from lr_lab.errors import ContractError

# Where an optimizer's param group keeps the LR it was built with once a scheduler has moved it:
# every torch scheduler sets ``initial_lr``; OneCycleLR keeps the peak, its usual LR, in ``max_lr``.
_LR_KEYS = ("lr", "initial_lr", "max_lr")


class ContractCheck(L.Callback):
    """Stops a user module's trial, with one line, where it breaks the lab's contract.

    Args:
        lr: The trial's learning rate, set on the module's LR attribute (None: a baseline's
            optimizer, which has its own).
        attribute: That attribute's name (``lr``, ``learning_rate``, ``hparams.lr``, ...).
        metric: The validation metric the module must log.
        init_keys: The ``state_dict`` keys of ``init.ckpt``.
    """

    def __init__(self, lr: float | None, attribute: str, metric: str, init_keys: set[str]):
        self.lr, self.attribute, self.metric, self.init_keys = lr, attribute, metric, init_keys

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """The optimizer trains at the trial's LR, and every parameter came from ``init.ckpt``."""
        name = type(pl_module).__qualname__
        made = sorted(set(pl_module.state_dict()) - self.init_keys)
        if made:
            raise ContractError(
                f"{name} made {', '.join(made[:3])} after __init__ (in setup?): every trial starts "
                f"from init.ckpt, saved after __init__, so build every layer in __init__"
            )
        groups = [group for optimizer in trainer.optimizers for group in optimizer.param_groups]
        if not groups:  # None gives Lightning's stand-in optimizer, with no parameters
            raise ContractError(f"{name}.configure_optimizers returned no optimizer")
        seen = [group[k] for group in groups for k in _LR_KEYS if _is_number(group.get(k))]
        if self.lr is not None and not any(math.isclose(v, self.lr, rel_tol=1e-6) for v in seen):
            raise ContractError(
                f"{name}.configure_optimizers did not use the learning rate lr_lab set "
                f"({self.attribute} = {self.lr:g}; the optimizer has lr {groups[0].get('lr', 'none')}): build "
                f"the optimizer with lr=self.{self.attribute}"
            )

    def on_before_backward(self, trainer: L.Trainer, pl_module: Any, loss: Tensor) -> None:
        """The loss is a scalar (a vector would need a reduction the lab cannot guess)."""
        if loss.numel() != 1:
            raise ContractError(
                f"{type(pl_module).__qualname__}.training_step returned a tensor of shape "
                f"{tuple(loss.shape)} at step {trainer.global_step}: it must return the loss (a "
                f"scalar tensor, or a dict with 'loss'), e.g. loss.mean()"
            )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Forget the metric's last value: only this epoch's validation may set it again."""
        trainer.callback_metrics.pop(self.metric, None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def contract_error(module: Any, err: Exception) -> ContractError | None:
    """Lightning's complaint about a user's module as the lab's one line, or None if it is not one.

    Args:
        module: The user's module.
        err: What ``trainer.fit`` raised.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    name, text = type(module).__qualname__, " ".join(str(err).split())
    if isinstance(err, RuntimeError) and "only supported with manual optimization" in text:
        # Lightning's advice (manual optimization) is what the finder cannot sweep.
        return ContractError(
            f"{name}.configure_optimizers returned several optimizers: Lightning's LR finder and "
            f"lr_lab train one, with automatic optimization"
        )
    return ContractError(f"{name}: {text}") if isinstance(err, MisconfigurationException) else None
