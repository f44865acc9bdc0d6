"""The race: successive halving on a smoothed metric. Pure functions of per-epoch histories.

Every rung trains its candidates from the same ``init.ckpt`` with the same data order and the
full budget's schedule, stopped after the rung's epochs, so a rung's history is the first epochs
of the full trial at that LR. A candidate's score is its smoothed metric (the last epoch alone
swings by a median 8%, up to 2x, from one epoch to the next); the best ``1/eta`` go on to the
next rung, which trains ``eta`` times as many epochs; the last cut keeps one, the winner, which
is trained to the full budget. A diverged candidate never goes on. A first rung that cannot
tell its candidates apart (nothing has learned yet) is extended: twice the epochs, no cut.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lr_lab.analysis.measure import Measure
from lr_lab.analysis.records import RungResult

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


def survivors(n: int, eta: int) -> int:
    """How many of ``n`` go on: the best ``1/eta`` (rounded down), at least one."""
    return max(1, n // max(2, eta))


def undecided(gaps: Sequence[float | None], extend: float) -> bool:
    """Whether a rung cannot tell its candidates apart (nothing has learned yet).

    It cannot when the median gap (to the metric's best possible value,
    :class:`~lr_lab.analysis.measure.Measure`) is within ``extend`` of the smallest. Fewer than
    two finite gaps decide nothing either way (False).
    """
    finite = [g for g in gaps if g is not None and math.isfinite(g)]
    if extend <= 0 or len(finite) < 2:
        return False
    return statistics.median(finite) <= (1 + extend) * min(finite)


def promote(
    scores: Sequence[float | None], n_keep: int, key: Callable[[float], float]
) -> list[int]:
    """Indices of the ``n_keep`` best scores (``key``: lower is better); None never goes on.

    Ties keep the smaller LR's index (the candidates come in increasing LR): the safer one.
    """
    ranked = sorted((key(s), i) for i, s in enumerate(scores) if s is not None)
    return sorted(i for _, i in ranked[:n_keep])


# The scores of ``lrs`` raced for ``epochs`` epochs as rung ``index`` (None: not yet trained).
ScoresOf = Callable[[list[float], int, int], "list[float | None] | None"]


@dataclass
class Race:
    """A race as far as its trained rungs take it: the next rung to train, or its end."""

    rungs: list[RungResult] = field(default_factory=list)
    next: tuple[list[float], int] | None = None  # the LRs and epochs of the rung to train next
    winner: float | None = None
    failed: str = ""  # why there is no winner


def run_race(
    lrs: list[float], first_epochs: int, eta: int, cuts: int, extend: float, max_epochs: int,
    mode: str, scores_of: ScoresOf,
) -> Race:  # fmt: skip
    """Replay a race over the rungs ``scores_of`` knows, up to the first it does not.

    Args:
        lrs: The candidates, increasing.
        first_epochs: The first rung's epochs.
        eta: The best 1/eta go on; the next rung trains eta times as many epochs.
        cuts: Cuts before the winner (the last keeps one).
        extend: The first rung's undecided margin (:func:`undecided`); 0 never extends.
        max_epochs: The full budget (no rung trains more).
        mode: The metric's direction (scores are in its units).
        scores_of: Each rung's smoothed scores, or None while it is not trained.
    """
    race, alive, epochs, done = Race(), list(lrs), max(1, first_epochs), 0
    while len(alive) > 1:
        epochs = min(epochs, max_epochs)
        scores = scores_of(alive, epochs, len(race.rungs))
        if scores is None:
            race.next = (alive, epochs)
            return race
        measure = Measure.of(mode, scores)
        gaps = [None if v is None else measure.gap(v) for v in scores]
        if done == 0 and epochs < max_epochs and undecided(gaps, extend):
            kept = [lr for lr, v in zip(alive, scores) if v is not None]
            race.rungs.append(RungResult(epochs, alive, scores, kept, extended=True))
            alive, epochs = kept, epochs * 2
            continue
        done += 1
        last = done >= cuts or epochs >= max_epochs
        keep = promote(scores, 1 if last else survivors(len(alive), eta), measure.key)
        race.rungs.append(RungResult(epochs, alive, scores, [alive[i] for i in keep]))
        alive, epochs = [alive[i] for i in keep], epochs * max(2, eta)
    if alive:
        race.winner = alive[0]
    else:
        race.failed = f"every candidate diverged in rung {len(race.rungs) - 1}"
    return race
