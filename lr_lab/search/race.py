"""The race: successive halving on a smoothed metric. Pure functions of per-epoch histories.

Every rung trains its candidates from the same ``init.ckpt`` with the same data order and the
full budget's schedule, stopped after the rung's epochs, so a rung's history is the first epochs
of the full trial at that LR. A candidate's score is its smoothed metric (the last epoch alone
swings 2-4x from one epoch to the next on small batches); the best ``1/eta`` go on to the next
rung, which trains ``eta`` times as many epochs; the last survivor wins and is trained to the
full budget. A diverged candidate never goes on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

SMOOTHINGS = ("last", "mean2", "mean3", "min", "ema")
EMA_WEIGHT = 0.5  # of the newest epoch


def smoothed(history: Sequence[float], how: str) -> float | None:
    """A history's score: its last value, the mean of its last 2 or 3, its best, or an EMA.

    Args:
        history: Per-epoch values of the metric (``mode`` aside: ``min`` picks the lowest, so
            the caller passes values for which lower is better).
        how: One of :data:`SMOOTHINGS`.

    Returns:
        The score, or None for an empty or non-finite history.
    """
    values = list(history)
    if not values or not all(math.isfinite(v) for v in values):
        return None
    if how == "last":
        return values[-1]
    if how in ("mean2", "mean3"):
        return statistics.fmean(values[-int(how[-1]) :])
    if how == "min":
        return min(values)
    if how == "ema":
        avg = values[0]
        for v in values[1:]:
            avg = EMA_WEIGHT * v + (1 - EMA_WEIGHT) * avg
        return avg
    raise ValueError(f"smoothing {how!r}: expected one of {SMOOTHINGS}")


def rung_epochs(first: int, eta: int, rungs: int, max_epochs: int) -> list[int]:
    """Each rung's epochs: ``first``, ``first x eta``, ... while below the full budget."""
    out: list[int] = []
    epochs = max(1, first)
    while len(out) < rungs and epochs < max_epochs:
        out.append(epochs)
        epochs *= max(2, eta)
    return out or [max(1, min(first, max_epochs))]


def survivors(n: int, eta: int) -> int:
    """How many of ``n`` go on: the best ``1/eta``, at least one."""
    return max(1, math.ceil(n / max(2, eta)))


def promote(
    scores: Sequence[float | None], n_keep: int, key: Callable[[float], float]
) -> list[int]:
    """Indices of the ``n_keep`` best scores (``key``: lower is better); None never goes on.

    Ties keep the smaller LR's index (the candidates come in increasing LR): the safer one.
    """
    ranked = sorted((key(s), i) for i, s in enumerate(scores) if s is not None)
    return sorted(i for _, i in ranked[:n_keep])


def winner(scores: Sequence[float | None], key: Callable[[float], float]) -> int | None:
    """The index of the best score, or None when every candidate diverged."""
    best = promote(scores, 1, key)
    return best[0] if best else None
