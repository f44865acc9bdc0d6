"""The LR finder's smoothing, as Lightning does it and as it should be done (Lightning #14167).

Lightning's ``_LRCallback`` keeps an exponential moving average of the per-step loss,
``avg = beta * avg + (1 - beta) * loss`` (beta = 0.98), and divides it by ``1 - beta**(global_step
+ 1)`` to remove the bias of starting at 0. But ``global_step`` has already counted the step when
the callback runs, so the first point is divided by ``1 - beta**2`` instead of ``1 - beta``: it
shows about half the true loss (0.02 / 0.0396 = 0.505), and every finder plot starts with a false
rise over the smallest learning rates. :func:`corrected_curve` divides by ``1 - beta**n``, ``n``
the number of losses averaged, so its first point is the first loss itself.

Both functions mirror Lightning's handling of a step without a loss (a NaN point that leaves the
average alone) and of a non-finite loss (which poisons the average, as it does in Lightning).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BETA = 0.98  # Lightning's default for _LRCallback


def _ema(raw: Sequence[float | None], beta: float, offset: int) -> list[float]:
    # n counts the losses averaged, which is also Lightning's global_step after the step (a step
    # without a loss takes no optimizer step).
    out, avg, n = [], 0.0, 0
    for value in raw:
        if value is None:
            out.append(math.nan)
            continue
        n += 1
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta ** (n + offset)))
    return out


def corrected_curve(raw: Sequence[float | None], beta: float = BETA) -> list[float]:
    """The moving average of ``raw`` with the right bias correction (first point = first loss).

    Args:
        raw: The loss of each finder step; ``None`` where a step returned no loss.
        beta: The smoothing factor.
    """
    return _ema(raw, beta, offset=0)


def lightning_curve(raw: Sequence[float | None], beta: float = BETA) -> list[float]:
    """The curve Lightning records from the same losses (its bias correction one step late)."""
    return _ema(raw, beta, offset=1)
