"""How values of the ranking metric compare, in either direction, at any sign; and verdicts.

A metric is minimized (a loss) or maximized (an accuracy): ``metric_mode``, as ``ModelCheckpoint``
and ``EarlyStopping`` have it. "How far from the best" must mean something for both, and for
metrics that reach 0 or go negative, so :class:`Measure` reads a value by its *gap to a bound*
where the metric has one:

- a minimized metric that is never negative (a loss): the gap is the value itself, and "vs best"
  is the ratio of the values, ``1.5x`` (what the study's hit rate counts);
- a maximized metric that is never above 1 (an accuracy, F1, AUROC): the gap is ``1 - value``,
  the error, and "vs best" is the ratio of the errors (``2x``: twice the best's error);
- no bound (a log-likelihood, an ELBO), or a best that sits on its bound (an exact fit, 100%
  accuracy): "vs best" is the difference in the metric's own units, ``+0.31``.

Verdicts read a trial's per-epoch history through the same gaps. The rules, in the order they are
tried (the README states them too):

- ``diverged``: the loss became non-finite or blew up at some step (the trial was stopped there).
- ``unstable``: the final gap is more than 1.5x the smallest gap of the run (it rose markedly), or
  it oscillates: in at least a third of consecutive epochs the gap grew by more than 5% of itself
  and by more than 5% of the run's whole range.
- ``best``: the best final value of all trials compared.
- ``slow``: the final gap is more than 2x the best's, and fell in each of the last 3 epochs.
- ``poor``: the final gap is more than 2x the best's and has stopped falling.
- ``good``: anything else.

Without a bound, a value's gap is ``1 + 2 x`` its distance from the best over the spread of the
trials compared, so "2x the best's gap" means worse by more than half of that spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

VERDICTS = ("best", "good", "slow", "poor", "unstable", "diverged")
ROSE_FACTOR = 1.5
OSCILLATION_JUMP = 1.05
OSCILLATION_SHARE = 1 / 3
OSCILLATION_RANGE = 0.05
FAR_FACTOR = 2.0
FALLING_EPOCHS = 3


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


@dataclass(frozen=True)
class Measure:
    """The ranking metric's direction and bound, and how far one value is from another.

    Attributes:
        mode: ``"min"`` or ``"max"``.
        bound: 0 for a minimized metric never below it, 1 for a maximized one never above it,
            else None.
        best: The best value compared (for gaps without a bound).
        spread: The range of the values compared (for gaps without a bound).
    """

    mode: str = "min"
    bound: float | None = 0.0
    best: float = 0.0
    spread: float = 0.0

    @classmethod
    def of(cls, mode: str, values: Sequence[float | None]) -> Measure:
        """The measure of a metric from the values a run observed of it."""
        seen = _finite(values)
        if mode == "max":
            bound = 1.0 if seen and max(seen) <= 1 else None
        else:
            bound = 0.0 if not seen or min(seen) >= 0 else None
        best = (max(seen) if mode == "max" else min(seen)) if seen else 0.0
        return cls(mode, bound, best, max(seen) - min(seen) if seen else 0.0)

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.mode == "max" else a < b

    def key(self, value: float) -> float:
        """A sort key: lower is better, whichever the direction."""
        return -value if self.mode == "max" else value

    def gap(self, value: float) -> float:
        """How far ``value`` is from perfect: to the bound, or (without one) from the best."""
        if self.bound is not None:
            return value - self.bound if self.mode == "min" else self.bound - value
        worse = self.key(value) - self.key(self.best)
        return 1 + 2 * worse / self.spread if self.spread > 0 else 1.0

    def versus(self, value: float, best: float) -> tuple[float, str]:
        """``value`` against ``best``: ``(ratio of gaps, "x")``, or ``(difference, "+")``."""
        if self.bound is not None and self.gap(best) > 0:
            return self.gap(value) / self.gap(best), "x"
        return self.key(value) - self.key(best), "+"

    @staticmethod
    def text(versus: tuple[float, str] | None) -> str:
        """``1.23x``, ``+0.031``, or ``-``."""
        if versus is None or not math.isfinite(versus[0]):
            return "-"
        value, kind = versus
        return f"{value:.3g}x" if kind == "x" else f"{value:+.3g}"

    def describe(self, metric: str) -> str:
        """What the table's ``vs best fixed`` means for this metric, in one sentence."""
        if self.bound is None:
            return f"vs best fixed: how much worse than the best fixed LR's {metric}, in its units"
        if self.mode == "max":
            return f"vs best fixed: the error (1 - {metric}) over the best fixed LR's"
        return f"vs best fixed: the {metric} over the best fixed LR's"

    def verdict(self, history: Sequence[float], diverged: bool, final: float | None,
                best: float | None) -> str:  # fmt: skip
        """The verdict for one trial (or one LR's mean over seeds), see the module docstring.

        Args:
            history: Per-epoch values of the ranking metric.
            diverged: Whether training diverged.
            final: The final value the trial is ranked by.
            best: The best final value among the trials compared.
        """
        if diverged or final is None or not math.isfinite(final):
            return "diverged"
        gaps = [self.gap(v) for v in _finite(history)]
        if is_unstable(gaps):
            return "unstable"
        if best is not None and not self.better(best, final):
            return "best"
        if best is not None and self.gap(final) > FAR_FACTOR * self.gap(best):
            return "slow" if is_still_falling(gaps) else "poor"
        return "good"


def is_unstable(gaps: list[float]) -> bool:
    """Whether the gap rose markedly over the run or oscillates (see the module docstring)."""
    if len(gaps) < 2:
        return False
    if gaps[-1] > ROSE_FACTOR * min(gaps):
        return True
    if len(gaps) < 3:
        return False
    floor = OSCILLATION_RANGE * (max(gaps) - min(gaps))
    jumps = sum(b > OSCILLATION_JUMP * a and b - a > floor for a, b in zip(gaps, gaps[1:]))
    return jumps >= OSCILLATION_SHARE * (len(gaps) - 1)


def is_still_falling(gaps: list[float]) -> bool:
    """Whether the gap fell in each of the last (up to) 3 epochs."""
    tail = gaps[-(FALLING_EPOCHS + 1) :]
    return len(tail) >= 2 and all(b < a for a, b in zip(tail, tail[1:]))
