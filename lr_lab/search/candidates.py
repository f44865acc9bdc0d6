"""Which learning rates the race tries: a bracket on a fixed log grid around the finder's answer.

Pure functions of numbers. The finder's trusted rules give an anchor (the geometric mean of
their suggestions on both finder curves); the bracket spans ``below`` decades under it and
``above`` decades over it on the grid of ``spacing``-decade points (10^(k x spacing), so the
same LRs recur across runs and seeds and read well: 0.01, 0.0178, 0.0316, ...). When the rules
give nothing (the finder stopped early, or its curve never fell), the bracket is the coarse
fallback: every half decade over ``FALLBACK_RANGE`` (within the finder's range). The search
never answers "no recommendation". The design study chose these (docs/search.md).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

FALLBACK_RANGE = (1e-4, 1.0)


@dataclass(frozen=True)
class Candidates:
    """The LRs to race, and where they came from.

    Attributes:
        lrs: The learning rates, increasing.
        anchor: The rules' geometric mean (None for the fallback).
        rules: The rule suggestions the anchor was read from.
        fallback: Why the coarse bracket stands in (empty when the rules answered).
    """

    lrs: list[float]
    anchor: float | None = None
    rules: dict[str, float] | None = None
    fallback: str = ""


def grid_point(lr: float, spacing: float) -> int:
    """The index k of the grid point 10^(k x spacing) nearest to ``lr`` (in log space)."""
    return round(math.log10(lr) / spacing)


def grid_lr(k: int, spacing: float) -> float:
    """The grid point 10^(k x spacing), at 3 significant digits (as run names show it)."""
    return float(f"{10 ** (k * spacing):.3g}")


def geometric_mean(values: Iterable[float]) -> float:
    """The mean of ``values`` in log space."""
    return 10 ** statistics.fmean(math.log10(v) for v in values)


def bracket(anchor: float, below: float, above: float, spacing: float) -> list[float]:
    """The grid points from ``anchor / 10**below`` to ``anchor * 10**above``, both included."""
    centre = grid_point(anchor, spacing)
    low = centre - round(below / spacing)
    high = centre + round(above / spacing)
    return [grid_lr(k, spacing) for k in range(low, high + 1)]


def candidates(
    suggestions: dict[str, float | None],
    below: float,
    above: float,
    spacing: float,
    finder_range: tuple[float, float] | None = None,
    fallback_spacing: float = 0.5,
    limits: tuple[float, float] = (1e-7, 1e3),
) -> Candidates:
    """The race's candidates from the trusted rules' suggestions (``None``: no suggestion).

    Args:
        suggestions: Each trusted rule's LR (on one seed's finder curves).
        below: Decades of the bracket under the anchor.
        above: Decades over it.
        spacing: Decades between candidates.
        finder_range: The LRs the finder swept (min, max): the fallback stays within them.
        fallback_spacing: Decades between the fallback's candidates.
        limits: LRs the bracket never leaves (float32-sane, a finder's range).
    """
    given = {rule: lr for rule, lr in suggestions.items() if lr is not None and lr > 0}
    if given:
        anchor = geometric_mean(given.values())
        lrs = [lr for lr in bracket(anchor, below, above, spacing) if limits[0] <= lr <= limits[1]]
        return Candidates(lrs, anchor, given)
    low, high = FALLBACK_RANGE
    if finder_range and max(low, finder_range[0]) < min(high, finder_range[1]):
        low, high = max(low, finder_range[0]), min(high, finder_range[1])
    why = "no trusted rule gave a suggestion"
    k_low = math.ceil(math.log10(low) / fallback_spacing - 1e-9)
    k_high = math.floor(math.log10(high) / fallback_spacing + 1e-9)
    lrs = [grid_lr(k, fallback_spacing) for k in range(k_low, k_high + 1)]
    return Candidates(lrs or [grid_lr(grid_point(high, spacing), spacing)], None, given, why)
