"""The ``ray`` executor: trials on a pool of Ray actors, on a local Ray or a cluster.

``pip install -e '.[ray]'``. As many actors as trials fit side by side (``ray.cpus_per_trial``,
``ray.gpus_per_trial`` each); each is a worker process that runs trial after trial, so a worker's
start and imports are paid once per actor, not per trial. A trial is the same
:func:`~lr_lab.training.runner.run_trial`, on the spec and ``init.ckpt`` sent through the object
store, in a scratch folder; its TensorBoard files are written into the run folder here as it ends.
A stop request ends the actors, the unfinished trials pending; a dead worker is one line naming
them. ``ray.address``: null starts a private local Ray in a folder of its own, removed afterwards
(and swept by a janitor should this process be killed: :func:`_private_folder`); ``auto`` or an
address joins a running cluster, left running, whose nodes must import the user's classes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lr_lab import interrupt
from lr_lab.analysis.results import TrialResult
from lr_lab.atomic import atomic_write
from lr_lab.config.schema import RayConfig
from lr_lab.errors import LabError, TrialError, WorkerDied
from lr_lab.executors.ray_folder import private_folder
from lr_lab.training.problem import TrialSpec
from lr_lab.training.trainer import usable_cores

QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # read by Ray when it starts
_TOKEN: str | None = None
POLL_S = 0.2  # how often this process looks for a stop request while trials run
GROW_S = 5.0  # how often it looks for cluster nodes that joined while trials wait


class RayUnavailable(LabError):
    """Ray is not installed, or its cluster cannot run the trials."""


class TrialWorker:
    """A Ray actor: trials one after another in one worker process."""

    def __init__(self, scratch: str | None) -> None:
        import lr_lab.training.runner  # noqa: F401  the imports, before the first trial comes
        from lr_lab.training.trainer import quiet_lightning

        quiet_lightning()
        self.scratch = scratch if scratch and os.path.isdir(scratch) else None

    def run(self, specs: list[TrialSpec], index: int, init: bytes) -> Any:
        """Spec ``index`` in a scratch folder: ``(result, files)``, or the trial's SystemExit."""
        from lr_lab.training.runner import run_trial

        spec = specs[index]
        with tempfile.TemporaryDirectory(prefix="lr_lab_trial_", dir=self.scratch) as tmp:
            (folder := Path(tmp) / f"seed{spec.seed}").mkdir()
            (init_path := folder / "init.ckpt").write_bytes(init)
            try:
                result = run_trial(replace(spec, init_path=str(init_path), log_dir=str(folder)))
            except SystemExit as err:  # a user's sys.exit(): the trial's error, not the actor's
                return err
            files = [p for p in (folder / spec.name).rglob("*") if p.is_file()]
            return result, {str(p.relative_to(folder / spec.name)): p.read_bytes() for p in files}


def _slots(have: dict, cfg: RayConfig, n: int) -> int:
    """How many trials fit side by side on resources ``have`` (at least one, at most ``n``)."""
    need = {"CPU": cfg.cpus_per_trial, "GPU": cfg.gpus_per_trial}
    return max(1, min([n] + [math.floor(have.get(k, 0) / v + 1e-9) for k, v in need.items() if v]))


def _run_pool(ray: Any, specs: list[TrialSpec], cfg: RayConfig, scratch: str | None,
              on_result: Callable[[TrialResult], None], actors: list) -> None:  # fmt: skip
    """Hand the trials to actors as they free up; each result to ``on_result`` as it comes."""
    from ray.exceptions import RayError, RayTaskError

    remote = ray.remote(max_restarts=0, max_task_retries=0)(TrialWorker)
    remote = remote.options(num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial)
    specs_ref = ray.put(specs)
    inits = {s.seed: ray.put(Path(s.init_path).read_bytes()) for s in specs}
    queue, idle, grown = deque(range(len(specs))), list(actors), -math.inf  # all idle between runs
    busy: dict = {}  # a trial's future -> (its actor, its index)
    while queue or busy:
        interrupt.check()  # first: nothing new starts after a stop request
        if queue and not idle and time.monotonic() - grown > GROW_S:  # first, then as nodes join
            grown, fits = time.monotonic(), _slots(ray.cluster_resources(), cfg, len(specs))
            idle += [remote.remote(scratch) for _ in range(min(fits - len(actors), len(queue)))]
            actors += idle  # idle: only the new ones
        while idle and queue:
            actor, index = idle.pop(), queue.popleft()
            busy[actor.run.remote(specs_ref, index, inits[specs[index].seed])] = (actor, index)
        done, _ = ray.wait(list(busy), num_returns=1, timeout=POLL_S)
        interrupt.check()
        errors, lost = [], []  # (index, error)
        for ref in done:
            actor, index = busy.pop(ref)
            try:
                reply = ray.get(ref)
            except RayTaskError as err:  # the trial raised; its actor lives on
                reply = getattr(err, "cause", None) or err
            except RayError as err:  # its worker process died
                lost.append((index, err))
                continue
            idle.append(actor)
            if isinstance(reply, BaseException):
                errors.append((index, reply))
                continue
            for name, data in reply[1].items():
                (Path(specs[index].run_dir) / name).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(Path(specs[index].run_dir) / name, data)
            on_result(reply[0])
        for index, err in sorted(errors, key=lambda e: e[0]):  # after this round's results
            raise TrialError(specs[index].key, err)
        if lost:
            left = sorted([i for i, _ in lost] + [i for _, i in busy.values()] + [*queue])
            why = "died (killed, out of memory, or its node was lost) while trials ran"
            if getattr(lost[0][1], "actor_init_failed", False):  # lr_lab not importable there, say
                why = f"could not start ({str(lost[0][1]).strip().splitlines()[-1].strip()})"
            names = ", ".join(specs[i].key for i in left)
            raise WorkerDied(f"a Ray worker process {why}; unfinished: {names}")


def _environment(local: bool, stack: contextlib.ExitStack) -> None:
    """Ray's settings in the environment until ``stack`` closes."""
    global _TOKEN
    overrides = dict(QUIET_ENV)
    if local and not (os.environ.get("RAY_AUTH_MODE") or os.environ.get("RAY_AUTH_TOKEN")):
        # Token auth, not written to ~/.ray/auth_token; one per process (Ray caches the first).
        _TOKEN = _TOKEN or secrets.token_hex(32)
        overrides.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_TOKEN)
    if local:  # the lab and a user's classes importable in the workers, as a job's runtime_env
        # would do, but then no actor could take a worker the raylet started (3 s more each).
        paths = [p for p in sys.path if p and not p.startswith((sys.prefix, sys.base_prefix))]
        overrides["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, os.getenv("PYTHONPATH")]))
    saved = {k: os.environ.get(k) for k in (*overrides, "PYTHONBREAKPOINT")}
    os.environ.update(overrides)
    stack.callback(lambda: [os.environ.pop(k, None) for k, v in saved.items() if v is None])
    stack.callback(os.environ.update, {k: v for k, v in saved.items() if v is not None})
    stack.callback(logging.getLogger("ray").setLevel, logging.getLogger("ray").level)
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # trial errors reach us as errors


def _check_resources(ray: Any, cfg: RayConfig, local: bool) -> None:
    have = dict.fromkeys(("CPU", "GPU"), 0) | ray.cluster_resources()
    if cfg.cpus_per_trial > have["CPU"] or cfg.gpus_per_trial > have["GPU"]:
        message = (f"ray.cpus_per_trial = {cfg.cpus_per_trial:g}, ray.gpus_per_trial = "
                   f"{cfg.gpus_per_trial:g}: the Ray cluster has {have['CPU']:g} CPU and "
                   f"{have['GPU']:g} GPU, so no trial could start")  # fmt: skip
        if local:  # a cluster may grow (autoscaler); a local Ray never does
            raise RayUnavailable(message)
        logging.getLogger("lr_lab").warning("%s; waiting for the cluster to grow", message)


class RaySession:
    """One Ray for all of a run's trials, started at the first ones and shut down by :meth:`close`.

    A run hands trials over in steps (the grid, the checks, each rung of a race, the peers): the
    actors of one step stay for the next, so Ray starts, and workers import, once per run.
    """

    def __init__(self, cfg: RayConfig):
        self.cfg, self.stack, self.actors = cfg, contextlib.ExitStack(), []
        self.ray: Any = None
        self.folder: str | None = None

    def run(self, specs: list[TrialSpec], on_result: Callable[[TrialResult], None]) -> None:
        """Run ``specs`` on the session's actors; hand each result to ``on_result``.

        Raises:
            RayUnavailable: Ray is not installed, or no trial fits on the cluster.
            TrialError: A trial raised (the first, named).
            WorkerDied: A Ray worker process died; it names the unfinished trials.
            Interrupted: A stop was requested; unfinished trials stay pending.
        """
        if self.ray is None:
            self._start()
        _run_pool(self.ray, specs, self.cfg, self.folder, on_result, self.actors)

    def _start(self) -> None:
        local, stack = self.cfg.address is None, self.stack
        _environment(local, stack)
        already = "ray" in sys.modules
        try:
            import ray
        except ImportError:
            raise RayUnavailable(
                "trials.executor = 'ray' needs Ray: pip install -e '.[ray]'"
            ) from None
        started = not ray.is_initialized()
        self.folder = stack.enter_context(private_folder()) if local and started else None
        if started and already and "RAY_AUTH_TOKEN" in os.environ:
            # Ray read RAY_AUTH_MODE at its import, before we set it: read it again, as Ray does.
            with contextlib.suppress(Exception):  # private: moved in another Ray version
                ray._raylet.Config.initialize("")
        # log_to_driver=False keeps the workers' output away, not what the raylet publishes
        # ("(raylet) A worker died ...", ray/_private/worker.py listen_error_messages): this does.
        worker = sys.modules.get("ray._private.worker")
        if (logs := getattr(worker, "_worker_logs_enabled", None)) is not None:
            worker._worker_logs_enabled = False
            stack.callback(setattr, worker, "_worker_logs_enabled", logs)
        if started:
            stack.callback(ray.shutdown)
        stack.callback(self._end_actors, ray, worker)
        if started:  # the cores this process may use (taskset, a container's), not all of them
            extra = {"_temp_dir": self.folder, "num_cpus": usable_cores()} if self.folder else {}
            ray.init(address=self.cfg.address, include_dashboard=False, configure_logging=False,
                     log_to_driver=False, **extra)  # fmt: skip
        _check_resources(ray, self.cfg, local)
        self.ray = ray

    def _end_actors(self, ray: Any, worker: Any) -> None:
        if self.folder is None:  # a cluster's (or the user's) Ray: end our actors there
            for actor in self.actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)
        elif node := getattr(worker, "_global_node", None):
            # The monitor takes the second that ray.shutdown() gives each (_kill_process_type).
            with contextlib.suppress(Exception):
                for info in node.all_processes.get("monitor", []):
                    info.process.kill()

    def close(self) -> None:
        """End the actors and a Ray this session started (nothing if it never started)."""
        self.stack.close()


def run_ray(
    specs: list[TrialSpec], cfg: RayConfig, on_result: Callable[[TrialResult], None]
) -> None:
    """Run ``specs`` on Ray actors of a session of their own (:meth:`RaySession.run`)."""
    session = RaySession(cfg)
    try:
        session.run(specs, on_result)
    finally:
        session.close()
