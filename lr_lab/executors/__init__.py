"""Executors: trial specs in, one result per spec out, reported as each finishes.

Where a trial ran never changes its numbers: every executor calls the same
:func:`~lr_lab.runner.run_trial` (or :func:`~lr_lab.batched.run_batched`) on the same specs.

- ``inline``: this process, one trial after another, or all of a seed at once (batched).
- ``processes``: worker processes on this machine, one per core or per GPU (:mod:`lr_lab.executors.pool`).
- ``ray``: a pool of Ray actors on a Ray cluster (:mod:`lr_lab.executors.ray`).
- ``auto``: batched when the built-in model can be stacked; else the first trial runs inline
  and, if the rest would take long enough for workers to pay off, they run in processes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lr_lab import interrupt
from lr_lab.analysis.records import TrialResult
from lr_lab.config.schema import RayConfig, TrialsConfig
from lr_lab.errors import TrialError
from lr_lab.training.batched import run_batched, should_batch
from lr_lab.training.problem import TrialSpec
from lr_lab.training.runner import run_trial
from lr_lab.training.trainer import SMALL_MODEL_PARAMS, plan_threads, usable_cores

OnResult = Callable[[TrialResult], None]
# Starting a pool of workers and its first Trainers costs about this much (scripts/bench.py:
# forked workers start in milliseconds; a forkserver in about 3 s): processes pay off only when
# they save more than twice that.
POOL_START_S = 1.0


@dataclass
class Plan:
    """How one seed's trials run."""

    executor: str  # "inline", "processes", "ray" or "auto"
    batched: bool
    workers: int = 1
    gpus: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """For the progress lines."""
        return "batched" if self.batched else self.executor


def plan(specs: list[TrialSpec], n_planned: int, trials: TrialsConfig) -> Plan:
    """How to run ``specs`` (the not yet finished part of ``n_planned`` trials of one seed).

    Batching is decided on all the planned trials, so a resumed run trains the rest the same way.
    """
    executor = trials.executor
    batched = (
        executor in ("inline", "auto")
        and specs[0].fit.plain_trainer
        and not specs[0].optimizer
        and should_batch(trials.batched, specs[0].problem, n_planned)
    )
    gpus: list[str] = []
    # With the default accelerator "auto", Lightning puts every trial on a GPU when there is one:
    # then workers are one per GPU too, not one per core all on GPU 0.
    accelerator = str(specs[0].fit.trainer.get("accelerator", "auto"))
    if executor in ("processes", "auto") and accelerator in ("gpu", "cuda", "auto"):
        from lr_lab.executors.pool import visible_gpus

        gpus = visible_gpus()
    workers = trials.workers or len(gpus) or usable_cores()
    return Plan(executor, batched, workers, gpus)


def pool_pays(trial_s: float, n_left: int, workers: int) -> bool:
    """Whether ``n_left`` more trials of ``trial_s`` seconds each finish sooner on ``workers``."""
    parallel = min(workers, n_left)
    saved = trial_s * n_left * (1 - 1 / max(1, parallel))
    return parallel > 1 and saved > 2 * POOL_START_S


def run_threads(trials: TrialsConfig, ray: RayConfig, n_params: int) -> int:
    """The intra-op threads every trial and finder of a run train on (``trainer.plan_threads``)."""
    executor = trials.executor
    if executor == "ray" and trials.threads is None and n_params > SMALL_MODEL_PARAMS:
        return max(1, int(ray.cpus_per_trial))  # the CPUs Ray gives each trial
    side_by_side = 1 if executor == "inline" else trials.workers or usable_cores()
    return plan_threads(trials.threads, n_params, side_by_side)


@contextlib.contextmanager
def trial_session(trials: TrialsConfig, ray: RayConfig) -> Iterator[Any]:
    """What a whole run's trials share: the Ray config, or for ``executor: ray`` one session.

    The session starts Ray at the first trials (none for a run with nothing left to train) and
    shuts it down at the end.
    """
    if trials.executor != "ray":
        yield ray
        return
    from lr_lab.executors.ray import RaySession

    session = RaySession(ray)
    try:
        yield session
    finally:
        session.close()


def _one(spec: TrialSpec) -> TrialResult:
    interrupt.check()
    try:
        return run_trial(spec)
    except (Exception, SystemExit) as err:  # a user's sys.exit() in training_step: this trial's
        raise TrialError(spec.key, err) from err


def execute(
    specs: list[TrialSpec],
    how: Plan,
    on_result: OnResult,
    ray: Any = None,
    say: Callable[[str], None] = lambda line: None,
) -> None:
    """Run ``specs`` as ``how`` says, handing each result to ``on_result`` as it finishes.

    ``ray``: the run's :class:`~lr_lab.executors.ray.RaySession` (or a ``RayConfig`` for a
    session of these specs alone). ``say`` gets one line when the plan changes on the way
    (objects that cannot reach worker processes train here instead).
    """
    if not specs:
        return
    if how.batched:
        interrupt.check()
        try:
            results = run_batched(specs)
        except (Exception, SystemExit) as err:
            raise TrialError(f"seed{specs[0].seed}/{len(specs)} batched trials", err) from err
        for result in results:
            on_result(result)
        return
    if how.executor == "ray":
        from lr_lab.executors.ray import run_ray

        if hasattr(ray, "run"):  # the run's session: Ray and its workers are already up
            ray.run(specs, on_result)
        else:
            run_ray(specs, ray or RayConfig(), on_result)
        return
    rest = specs
    if how.executor == "auto":
        start = time.perf_counter()
        on_result(_one(specs[0]))
        rest = specs[1:]
        pays = pool_pays(time.perf_counter() - start, len(rest), how.workers)
        how.executor = "processes" if pays else "inline"
    if how.executor == "processes" and len(rest) > 1 and how.workers > 1:
        from lr_lab.executors.pool import cannot_send, run_processes

        if (why := cannot_send(rest, how.gpus)) is None:
            run_processes(rest, how.workers, how.gpus, on_result)
            return
        say(f"  {why}; these trials run here, one after another")
        how.executor = "inline"
    for spec in rest:
        on_result(_one(spec))
