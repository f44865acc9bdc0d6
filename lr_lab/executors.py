"""Executors: trial specs in, one result per spec out, reported as each finishes.

Where a trial ran never changes its numbers: every executor calls the same
:func:`~lr_lab.runner.run_trial` (or :func:`~lr_lab.batched.run_batched`) on the same specs.

- ``inline``: this process, one trial after another, or all of a seed at once (batched).
- ``processes``: a pool of worker processes on this machine (:mod:`lr_lab.pool`).
- ``ray``: Ray Tune on a Ray cluster (:mod:`lr_lab.ray_executor`).
"""

from __future__ import annotations

from collections.abc import Callable

from lr_lab import interrupt
from lr_lab.batched import run_batched, should_batch
from lr_lab.data import input_dim
from lr_lab.errors import TrialError
from lr_lab.results import TrialResult
from lr_lab.runner import run_trial
from lr_lab.spec import TrialSpec

OnResult = Callable[[TrialResult], None]


def run_inline(specs: list[TrialSpec], batched: bool, on_result: OnResult) -> None:
    """Run the specs in this process: stacked in one module if ``batched``, else one by one."""
    if batched:
        interrupt.check()
        try:
            results = run_batched(specs)
        except Exception as err:
            raise TrialError(f"seed{specs[0].seed}/{len(specs)} batched trials", err) from err
        for result in results:
            on_result(result)
        return
    for spec in specs:
        interrupt.check()
        try:
            result = run_trial(spec)
        except Exception as err:
            raise TrialError(spec.key, err) from err
        on_result(result)


def choose_mode(specs: list[TrialSpec], n_planned: int) -> str:
    """How a seed's trials run: ``"batched"`` or ``"sequential"``.

    Decided on all ``n_planned`` trials (not only those left), so a resumed run trains the rest
    the same way.
    """
    cfg = specs[0].config
    n_inputs = input_dim(cfg.data) if cfg.builtin_model else 0
    return "batched" if should_batch(cfg, n_planned, n_inputs) else "sequential"


def execute(specs: list[TrialSpec], mode: str, on_result: OnResult) -> None:
    """Run ``specs`` as ``mode`` says, handing each result to ``on_result`` as it finishes."""
    if specs:
        run_inline(specs, mode == "batched", on_result)
