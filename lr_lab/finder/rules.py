"""Suggestion rules: pure functions that read a learning rate off an LR-finder curve.

Each takes the finder's recorded ``(lrs, losses)`` (Lightning records an exponentially smoothed
loss, beta = 0.98) and returns a :class:`Suggestion`: a learning rate, or ``None`` with the reason
it could not decide. A rule answers only from what the curve shows; whenever the answer would not
be grounded in the data it says why instead.

Every curve rule reads the same trimmed curve (:func:`trim`): it drops the first
:func:`skip_begin` points and the last ``SKIP_END`` by position, then any point whose loss or LR
is non-finite or whose LR is not positive, in the same order as Lightning's own ``suggestion()``.
The first points of the moving average rest on a handful of batches (and Lightning 2.6 divides
them by 1 - beta**(step + 2), one step too many, so they also sit low): they are mostly noise.
The ``lightning`` rule is Lightning's own value, passed through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Lightning's suggestion() skips the first 10 points and the last one; the curve rules skip at
# most SKIP_BEGIN (see skip_begin) and exactly SKIP_END.
SKIP_BEGIN = 10
SKIP_END = 1
# Points a curve rule needs after trimming: the jitter (see _unreadable) is a mean over the
# interior points, and 5 points give 3 of them.
MIN_POINTS = 5
# A fall counts only if it exceeds this many times sqrt(points) times the jitter (_unreadable).
FALL_NOISE_FACTOR = 4.0
# Losses are float32 batch means: a change within 2 float32 ulps (2**-22) of the values is
# rounding, not a fall.
RESOLUTION = 2.0**-22


@dataclass(frozen=True)
class Suggestion:
    """A rule's answer: ``lr``, or ``None`` and a ``note`` saying why not."""

    lr: float | None
    note: str = ""


def skip_begin(n: int) -> int:
    """Points the curve rules skip at the start of an ``n``-point sweep: ``min(10, n // 10)``.

    At Lightning's default of 100 steps this is Lightning's own 10. A shorter sweep skips a tenth
    of its points, as fastai's ``lr_find`` does (``num_it // 10``): a fixed 10 would hide most of
    a 14-20 point sweep, and with it the whole fall.
    """
    return min(SKIP_BEGIN, max(0, n) // 10)


def _check_lengths(lrs: Sequence[float], losses: Sequence[float]) -> None:
    if len(lrs) != len(losses):
        raise ValueError(
            f"lrs and losses must have the same length, got {len(lrs)} lrs and {len(losses)} losses"
        )


def trim(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray, str]:
    """The points the curve rules read: ``(lr, loss, "")``, or empty arrays and why not.

    LRs that do not strictly increase are rejected, not sorted: the finder's loss at a step
    depends on every step trained before it, so the curve is a path in time, and reordering it
    would invent a curve that never ran. (Lightning's schedule always increases; a repeated or
    falling LR means a corrupted or concatenated record.)

    Args:
        lrs: Learning rates, strictly increasing; points with a non-finite or non-positive LR
            are dropped before the check.
        losses: Smoothed loss at each learning rate.

    Returns:
        Float64 arrays of the kept LRs and losses, and ``""``; or empty arrays and the reason.

    Raises:
        ValueError: ``lrs`` and ``losses`` differ in length.
    """
    _check_lengths(lrs, losses)
    lr = np.asarray(lrs, dtype=np.float64).reshape(-1)
    loss = np.asarray(losses, dtype=np.float64).reshape(-1)
    usable = np.flatnonzero(np.isfinite(lr) & (lr > 0))
    bad = np.flatnonzero(np.diff(lr[usable]) <= 0)
    if len(bad):
        prev, k = usable[bad[0]], usable[bad[0] + 1]
        why = f"the learning rates do not increase (lr[{k}] = {lr[k]:.6g} after {lr[prev]:.6g})"
        return np.empty(0), np.empty(0), why + ": not one finder sweep"
    begin, end = skip_begin(len(lr)), max(0, len(lr) - SKIP_END)
    lr, loss = lr[begin:end], loss[begin:end]
    keep = np.isfinite(lr) & np.isfinite(loss) & (lr > 0)
    return lr[keep], loss[keep], ""


def _unit(loss: np.ndarray) -> tuple[np.ndarray, int]:
    """``loss`` divided by a power of two so that ``|loss| <= 1``, and the exponent of it.

    Dividing by a power of two is exact, so every comparison and argmin is unchanged, but
    differences of losses near 1e308 no longer overflow to inf or NaN.
    """
    top = float(np.max(np.abs(loss))) if len(loss) else 0.0
    exponent = int(np.frexp(top)[1]) if top else 0
    return np.ldexp(loss, -exponent), exponent


def _unreadable(loss: np.ndarray, begin: int) -> str:
    """Why the trimmed curve cannot be read ('' if it can): too short, flat, or never falls.

    The curve's jitter is the mean distance of each interior point from the median of itself
    and its two neighbours. It is zero along any monotone stretch however curved (a fall, an
    explosion), so it measures only how much the curve wiggles, at any offset or scale. A fall
    (an earlier point minus a later one, less float rounding) must exceed
    ``FALL_NOISE_FACTOR * sqrt(m)`` jitters over ``m`` points: Lightning's moving average turns
    batch noise into a wander that moves about a jitter per step, like a random walk, so its
    falls grow like sqrt(m). White noise of std s has a jitter of 0.56 s, so the bar (8.9 s at 5
    points, 21 s at 90) is far beyond its range. The factor 4 is calibrated on 93 real curves
    recorded by this lab (Lightning 2.6.6, 20-300 steps): the 34 flat ones (LRs 1e-9..1e-7,
    where nothing learns) fell at most 3.7 sqrt(m) jitters, the 59 learning ones at least 4.1
    sqrt(m) (median 20). The margin is thin: no test on the curve alone can always tell a
    wander from a shallow fall, so a real but shallow fall on a short sweep may be declined.
    """
    if len(loss) < MIN_POINTS:
        return (
            f"too few finite points ({len(loss)} after skipping the first {begin} and last "
            f"{SKIP_END}, need {MIN_POINTS})"
        )
    x, exponent = _unit(loss)

    def shown(value: float) -> str:  # in the loss's own units (inf past the largest double)
        with np.errstate(over="ignore"):
            return f"{float(np.ldexp(max(value, 0.0), exponent)):.3g}"

    middle = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    noise = FALL_NOISE_FACTOR * np.sqrt(len(x)) * float(np.mean(np.abs(x[1:-1] - middle)))
    spread = float(x.max() - x.min())
    if spread <= max(noise, RESOLUTION * float(np.max(np.abs(x)))):
        return (
            f"the loss curve is flat (spread {shown(spread)} within its noise {shown(noise)}): "
            "no learning rate made it fall"
        )
    peak = np.maximum.accumulate(x)
    fall = float(np.max(peak - x - RESOLUTION * np.maximum(np.abs(peak), np.abs(x))))
    if fall <= noise:
        return (
            f"the loss never falls by more than its noise (largest fall {shown(fall)}, "
            f"noise {shown(noise)})"
        )
    return ""


def _read(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray, str]:
    """The trimmed curve and ``""``, or why no rule can read it."""
    lr, loss, why = trim(lrs, losses)
    return lr, loss, why or _unreadable(loss, skip_begin(len(lrs)))


def steep_log(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Steepest descent of the loss against log10(LR): torch-lr-finder's rule on a log sweep.

    The slope is ``numpy.gradient`` (central differences, one-sided at the ends) of the loss
    over log10(LR), and the LR is the point where it is most negative. torch-lr-finder 0.2.2 and
    Lightning <= 2.5.2 take the gradient against the step index instead, which on an exponential
    (log-spaced) sweep ranks the points the same way. It is not fastai's ``steep``, which takes
    forward differences against ln(LR) and returns the LR at the start of the steepest step.
    Lightning >= 2.5.3 takes the slope against the raw LR, where a small wiggle at a tiny LR
    outweighs the real fall (Lightning #21141); against log10(LR) every decade weighs the same.

    Args:
        lrs: Learning rates, strictly increasing.
        losses: Smoothed loss at each learning rate.

    Returns:
        The LR of steepest descent, or ``None`` if the curve is unreadable, the loss never
        falls, or any slope is not finite (LRs too close together on a log scale).
    """
    lr, loss, why = _read(lrs, losses)
    if why:
        return Suggestion(None, why)
    with np.errstate(all="ignore"):
        slope = np.gradient(_unit(loss)[0], np.log10(lr))
    if not np.isfinite(slope).all():
        k = int(np.argmin(np.isfinite(slope)))
        return Suggestion(None, f"the slope is not finite at LR {lr[k]:.6g}: LRs too close")
    i = int(np.argmin(slope))
    if slope[i] >= 0:
        return Suggestion(None, "the loss never falls with the learning rate")
    return Suggestion(float(lr[i]))


def valley(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Fastai's ``valley``: a point in the longest decreasing stretch of the curve.

    As fastai 2.8.12 ``callback/schedule.py``: find the longest (not necessarily contiguous)
    strictly decreasing subsequence of the loss, ending at its first possible end; with
    ``start = end - length``, split ``end - start`` into thirds and return the LR at
    ``start + int(third) + int(third / 2)``, just past the middle of the fall. Fastai also answers
    when that subsequence is shorter than 3 (``lrs[0]`` for a rising curve, even ``lrs[-1]`` for a
    run of 2 from the first point); this rule declines there.

    Args:
        lrs: Learning rates, strictly increasing.
        losses: Smoothed loss at each learning rate.
    """
    lr, loss, why = _read(lrs, losses)
    if why:
        return Suggestion(None, why)
    n = len(loss)
    run = np.ones(n, dtype=np.int64)  # length of the longest decreasing run ending at i
    for i in range(1, n):
        earlier = loss[:i] > loss[i]
        if earlier.any():
            run[i] = int(run[:i][earlier].max()) + 1
    end = int(np.argmax(run))  # first index where the longest run ends, as fastai
    if run[end] < 3:
        return Suggestion(None, "no decreasing stretch of 3 or more points")
    start = end - int(run[end])
    third = (end - start) / 3
    return Suggestion(float(lr[start + int(third) + int(third / 2)]))


def minimum_div10(lrs: Sequence[float], losses: Sequence[float]) -> Suggestion:
    """Fastai's ``minimum``: the LR at the lowest loss, divided by 10.

    At the minimum the loss is about to blow up, so a tenth of it is the classic safe choice.
    Fastai 2.8.12 answers ``lrs[0] / 10`` when the lowest loss is the first point; this rule
    declines there, since the loss never fell.

    Args:
        lrs: Learning rates, strictly increasing.
        losses: Smoothed loss at each learning rate.
    """
    lr, loss, why = _read(lrs, losses)
    if why:
        return Suggestion(None, why)
    i = int(np.argmin(loss))
    if i == 0:
        return Suggestion(None, "the lowest loss is at the smallest LR: the loss never fell")
    if not lr[i] / 10 > 0:  # a subnormal LR whose tenth rounds to 0
        return Suggestion(None, f"a tenth of LR {lr[i]:.3g} is not a positive number")
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

    Raises:
        ValueError: A rule name is unknown, or ``lrs`` and ``losses`` differ in length.
    """
    unknown = [r for r in rules if r != "lightning" and r not in CURVE_RULES]
    if unknown:
        known = ", ".join(["lightning", *CURVE_RULES])
        raise ValueError(f"unknown rule {unknown[0]!r}: expected one of {known}")
    _check_lengths(lrs, losses)
    out: dict[str, Suggestion] = {}
    for rule in rules:
        if rule == "lightning":
            out[rule] = Suggestion(lightning_lr, "" if lightning_lr is not None else lightning_note)
        else:
            out[rule] = CURVE_RULES[rule](lrs, losses)
    return out
