"""Verdicts: a pure reading of one trial's per-epoch loss history.

The rules, in the order they are tried (the README states them too):

- ``diverged``: the loss became non-finite or exceeded ``divergence_factor`` times the first
  step's loss at some step (the trial was stopped there).
- ``unstable``: the final loss is more than 1.5x the lowest loss of the run (it rose markedly),
  or it oscillates: in at least a third of consecutive epochs the loss went up by more than 5% of
  itself and by more than 5% of the run's whole range (max - min; needs 3 or more epochs). The
  second bound keeps the jitter of a converged run at its noise floor from counting.
- ``best``: the lowest final loss of all trials compared (rank 1).
- ``slow``: the final loss is more than 2x the best, and the loss fell in each of the last
  (up to) 3 epochs: it is still learning, just too slowly.
- ``poor``: the final loss is more than 2x the best and has stopped falling.
- ``good``: anything else (within 2x of the best).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

VERDICTS = ("best", "good", "slow", "poor", "unstable", "diverged")
ROSE_FACTOR = 1.5
OSCILLATION_JUMP = 1.05
OSCILLATION_SHARE = 1 / 3
OSCILLATION_RANGE = 0.05
FAR_FACTOR = 2.0
FALLING_EPOCHS = 3


def is_unstable(history: Sequence[float]) -> bool:
    """Whether the loss rose markedly over the run or oscillates (see module docstring)."""
    values = [v for v in history if math.isfinite(v)]
    if len(values) < 2:
        return False
    if values[-1] > ROSE_FACTOR * min(values):
        return True
    if len(values) < 3:
        return False
    floor = OSCILLATION_RANGE * (max(values) - min(values))
    jumps = sum(b > OSCILLATION_JUMP * a and b - a > floor for a, b in zip(values, values[1:]))
    return jumps >= OSCILLATION_SHARE * (len(values) - 1)


def is_still_falling(history: Sequence[float]) -> bool:
    """Whether the loss fell in each of the last (up to) 3 epochs."""
    tail = list(history[-(FALLING_EPOCHS + 1) :])
    return len(tail) >= 2 and all(b < a for a, b in zip(tail, tail[1:]))


def verdict(
    history: Sequence[float], diverged: bool, final: float | None, best: float | None
) -> str:
    """The verdict for one trial (or one LR's mean over seeds).

    Args:
        history: Per-epoch loss (the ranking metric).
        diverged: Whether training diverged.
        final: The final loss the trial is ranked by.
        best: The best final loss among the trials compared.

    Returns:
        One of :data:`VERDICTS`.
    """
    if diverged or final is None or not math.isfinite(final):
        return "diverged"
    if is_unstable(history):
        return "unstable"
    if best is not None and final <= best:
        return "best"
    if best is not None and final > FAR_FACTOR * best:
        return "slow" if is_still_falling(history) else "poor"
    return "good"
