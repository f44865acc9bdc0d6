"""What a user's module logs with ``self.log``, into its trial's own TensorBoard run.

:class:`TrialLogger` is an ordinary Lightning logger (``lightning.pytorch.loggers.Logger``), so
Lightning decides what reaches it and when, as for any logger: step metrics every
``log_every_n_steps``, epoch metrics at each epoch's end, under the names the module gave them.
It writes through the trial's :class:`~lr_lab.training.events.ScalarLog`, into the same event
file as the lab's ``loss/*`` curves, and keeps each validation epoch's metrics for
``results.json``. It writes no files of its own (no ``hparams.yaml``, no version folders).
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from lr_lab.training.events import ScalarLog

SKIPPED = ("epoch", "step")  # Lightning's own bookkeeping, not the module's metrics


class TrialLogger(Logger):
    """The module's own metrics, into one trial's TensorBoard run.

    Args:
        log: The trial's event file (shared with the lab's recorder).
    """

    def __init__(self, log: ScalarLog):
        super().__init__()
        self.log = log
        self.validating = False  # set by the recorder around each validation
        self.validation: dict[str, float] = {}  # this validation's metrics, as they arrive

    @property
    def name(self) -> str:
        """The logger's name (Lightning asks)."""
        return "lr_lab"

    @property
    def version(self) -> int:
        """One version: the trial's run folder is its own."""
        return 0

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Write each scalar at ``step`` (non-finite values are left out of TensorBoard)."""
        for name, value in metrics.items():
            if name in SKIPPED:
                continue
            value = float(value)
            if self.validating:
                self.validation[name] = value
            if math.isfinite(value):
                self.log.add(name, value, 0 if step is None else int(step))

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the lab writes each trial's HParams row itself, from its records."""
