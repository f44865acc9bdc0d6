"""Divergence: which trials' losses blew up, at which step, and why.

:class:`DivergenceGuard` checks every optimizer step's losses of K trials (one, or a stacked
batch) with one host sync; the recorder also marks a trial whose validation metric is
non-finite. A diverged trial's curves end before the step it diverged at.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class DivergenceGuard:
    """Per-step divergence of K trials: a loss that is non-finite, or rose too far.

    Too far is above ``first + (factor - 1) * |first|``: ``factor`` x the first loss when it is
    positive (the usual case), and as far above it, in its own size, when it is negative (a
    log-likelihood of -3 has diverged at 2994 with the default 1000, not at -3000). A first loss
    of exactly 0 (an exact fit) has no size: only non-finite losses count then.

    Args:
        n_trials: K.
        factor: ``trials.divergence_factor``.
    """

    def __init__(self, n_trials: int, factor: float):
        self.factor = factor
        self.steps = 0  # optimizer steps checked so far
        self.first: Tensor | None = None
        self.alive: Tensor | None = None
        self.step: list[int | None] = [None] * n_trials  # the step each trial diverged at
        self.reason: list[str] = [""] * n_trials
        self.n_alive = n_trials

    def check(self, losses: Tensor) -> Tensor | None:
        """Check one optimizer step's losses, shape (K,); return the newly diverged mask, if any.

        The one host sync per step (``bool(bad.any())``).
        """
        if self.first is None:
            self.first = losses.detach().clone()
            size = self.first.abs()
            # A first loss of 0 (an exact fit) has no size: only non-finite losses count then.
            size = torch.where(size > 0, size, torch.full_like(size, math.inf))
            self._limit = self.first + (self.factor - 1) * size
            self._limit_1 = float(self._limit[0])
            self.alive = torch.ones_like(self.first, dtype=torch.bool)
        if len(self.step) == 1:  # one trial: one host read and plain Python (the common case)
            value = float(losses[0])
            hit = self.step[0] is None and (not math.isfinite(value) or value > self._limit_1)
            bad = self.alive.clone() if hit else None
        else:
            bad = self.alive & (~torch.isfinite(losses) | (losses > self._limit))
            bad = bad if bool(bad.any()) else None  # the one host sync per step
        if bad is not None:
            values = losses.tolist()
            for k in torch.nonzero(bad).flatten().tolist():
                self.step[k] = self.steps
                self.reason[k] = _reason(values[k], float(self.first[k]), self.factor, self.steps)
            self.alive &= ~bad
            self.n_alive = int(self.alive.sum())
        self.steps += 1
        return bad

    def mark(self, k: int, step: int, reason: str) -> Tensor:
        """Trial ``k`` diverged after ``step`` for a reason found outside the step (validation).

        Returns:
            The (K,) mask of the one trial, as :meth:`check` returns newly diverged trials.
        """
        mask = torch.zeros_like(self.alive)
        mask[k] = True
        self.step[k], self.reason[k] = step, reason
        self.alive &= ~mask
        self.n_alive = int(self.alive.sum())
        return mask


def _reason(loss: float, first: float, factor: float, step: int) -> str:
    if not math.isfinite(loss):
        return f"loss {loss} at step {step}"
    if first > 0:
        return f"loss {loss:.3g} > {factor:g} x the first loss {first:.3g} at step {step}"
    limit = first + (factor - 1) * abs(first)
    return (
        f"loss {loss:.3g} > {limit:.3g} (the first loss {first:.3g} plus {factor - 1:g} x its "
        f"size) at step {step}"
    )
