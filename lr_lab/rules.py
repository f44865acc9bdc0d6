"""Suggestion rules: pure functions that read a learning rate off an LR-finder curve.

Each takes the finder's recorded ``(lrs, losses)`` (Lightning records an exponentially smoothed
loss, beta = 0.98) and returns a :class:`Suggestion`: a learning rate, or ``None`` with the reason
it could not decide. Every curve rule first drops the first ``SKIP_BEGIN`` and last ``SKIP_END``
points, then any non-finite ones, in the same order as Lightning's own ``suggestion()``: the first
points of a bias-corrected moving average rest on a handful of batches and are mostly noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Relative spread of the loss below which a curve counts as flat: no rule can read it.
FLAT_TOLERANCE = 1e-3
SKIP_BEGIN = 10
SKIP_END = 1


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer: ``lr``, or ``None`` and a ``note`` saying why not."""

    lr: float | None
    note: str = ""


def _finite(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The trimmed curve: as Lightning, skip the first and last points, then drop non-finite ones."""
    lr = np.asarray(lrs, dtype=np.float64)[SKIP_BEGIN : max(0, len(lrs) - SKIP_END)]
    loss = np.asarray(losses, dtype=np.float64)[SKIP_BEGIN : max(0, len(losses) - SKIP_END)]
    keep = np.isfinite(lr) & np.isfinite(loss) & (lr > 0)
    return lr[keep], loss[keep]


def _unreadable(loss: np.ndarray, need: int) -> str:
    """Why a curve cannot be read ('' if it can): too short, or flat."""
    if len(loss) < need:
        return (
            f"too few finite points ({len(loss)} after skipping the first {SKIP_BEGIN} and last "
            f"{SKIP_END}, need {need})"
        )
    scale = max(float(np.median(np.abs(loss))), 1e-12)
    if float(loss.max() - loss.min()) <= FLAT_TOLERANCE * scale:
        return "the loss curve is flat: no learning rate made it fall"
    return ""


def steep_log(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Steepest descent of the loss against log10(LR).

    The slope is taken with ``numpy.gradient`` over log10(LR). Taking the slope against the log
    of the LR (as fastai's ``steep`` does) instead of the raw LR (Lightning since 2.5.3) weighs
    each decade of the sweep equally, so noise at tiny LRs cannot dominate (Lightning #21141).

    Args:
        lrs: Learning rates, increasing.
        losses: Smoothed loss at each learning rate.
    """
    lr, loss = _finite(lrs, losses)
    if why := _unreadable(loss, 3):
        return Suggestion(None, why)
    slope = np.gradient(loss, np.log10(lr))
    i = int(np.argmin(slope))
    if slope[i] >= 0:
        return Suggestion(None, "the loss never falls with the learning rate")
    return Suggestion(float(lr[i]))


def valley(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Fastai's ``valley``: a point in the longest decreasing stretch of the curve.

    From fastai ``callback/schedule.py``: find the longest (not necessarily contiguous) decreasing
    subsequence of the loss, split its span of indices into thirds, and return the LR at
    ``start + third + third // 2`` (just past the middle), a point where the loss still falls
    and is well below the start.

    Args:
        lrs: Learning rates, increasing.
        losses: Smoothed loss at each learning rate.
    """
    lr, loss = _finite(lrs, losses)
    if why := _unreadable(loss, 3):
        return Suggestion(None, why)
    n = len(loss)
    run = np.ones(n, dtype=np.int64)  # length of the longest decreasing run ending at i
    for i in range(1, n):
        earlier = loss[:i] > loss[i]
        if earlier.any():
            run[i] = int(run[:i][earlier].max()) + 1
    end = int(np.argmax(run))  # first index where the longest run ends, as fastai
    start = end - int(run[end])
    if run[end] < 3:
        return Suggestion(None, "no decreasing stretch of 3 or more points")
    third = (end - start) / 3
    idx = start + int(third) + int(third / 2)
    return Suggestion(float(lr[idx]))


def minimum_div10(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Fastai's ``minimum``: the LR at the lowest loss, divided by 10.

    At the minimum the loss is about to blow up, so a tenth of it is the classic safe choice.

    Args:
        lrs: Learning rates, increasing.
        losses: Smoothed loss at each learning rate.
    """
    lr, loss = _finite(lrs, losses)
    if why := _unreadable(loss, 3):
        return Suggestion(None, why)
    i = int(np.argmin(loss))
    if i == 0:
        return Suggestion(None, "the lowest loss is at the smallest LR: the loss never fell")
    return Suggestion(float(lr[i] / 10))


CURVE_RULES: dict[str, Callable[[Sequence[float], Sequence[float]], Suggestion]] = {
    "steep_log": steep_log,
    "valley": valley,
    "minimum_div10": minimum_div10,
}


def apply_rules(
    rules: Sequence[str],
    lrs: Sequence[float],
    losses: Sequence[float],
    lightning_lr: float | None,
    lightning_note: str = "",
) -> dict[str, Suggestion]:
    """Every requested rule's suggestion for one finder curve.

    Args:
        rules: Rule names; ``"lightning"`` is the value Lightning's ``suggestion()`` returned,
            taken as is.
        lrs: The finder's learning rates.
        losses: The finder's smoothed losses.
        lightning_lr: What Lightning suggested (``None`` if nothing).
        lightning_note: Why Lightning suggested nothing.

    Returns:
        Rule name to suggestion, in the order of ``rules``.
    """
    out: dict[str, Suggestion] = {}
    for rule in rules:
        if rule == "lightning":
            out[rule] = Suggestion(lightning_lr, "" if lightning_lr is not None else lightning_note)
        else:
            out[rule] = CURVE_RULES[rule](lrs, losses)
    return out
