"""The ``ray`` executor: trials on a pool of Ray actors, on a local Ray or a cluster.

``pip install -e '.[ray]'``. As many actors as trials fit side by side (``ray.cpus_per_trial``,
``ray.gpus_per_trial`` each), every one a worker process that runs trial after trial, so Ray's
start of a worker and the imports of torch and Lightning are paid once per actor, not once per
trial. The specs and each seed's ``init.ckpt`` travel through the object store, so a node needs
neither the run folder nor a shared disk. A trial runs the same
:func:`~lr_lab.training.runner.run_trial` in a scratch folder on its node and returns its result
and its TensorBoard event files; this process writes them into the run folder as each trial
finishes. Nothing of Ray's lands in the run folder or in ``~``.

Stops and failures are the ``processes`` executor's: a stop request (Ctrl-C, SIGTERM) starts
nothing new and ends the actors, the unfinished trials pending; a worker process that dies is one
line naming the unfinished trials (:class:`~lr_lab.errors.WorkerDied`), the finished ones kept,
and nothing of Ray's is printed meanwhile.

``ray.address``: null starts a private local Ray in a folder of its own under the system's temp
folder (``lrlab_ray_<pid>_*``), shut down and removed afterwards. Ray kills its GCS server and
raylet when this process dies however it dies (``PR_SET_PDEATHSIG``), but not the raylet's
agents nor the worker processes, which outlive a SIGKILL by a minute; a small janitor process
(:func:`_start_janitor`) waits for this process to end and then kills whatever still belongs to
the session and removes its folder. A folder left anyway (the janitor killed too) is removed at
the next start: its lock is no longer held. ``auto`` or a cluster address connects to a running
cluster (left running). The user's classes and any CSV file must be importable and readable on
the cluster's nodes (e.g. ``pip install`` the package there).
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import logging
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lr_lab import interrupt
from lr_lab.analysis.records import TrialResult
from lr_lab.atomic import atomic_write
from lr_lab.config.schema import RayConfig
from lr_lab.errors import LabError, TrialError, WorkerDied
from lr_lab.training.problem import TrialSpec
from lr_lab.training.trainer import usable_cores

QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # read by Ray when it starts
_TOKEN: str | None = None
POLL_S = 0.2  # how often this process looks for a stop request while trials run
GROW_S = 5.0  # on a cluster, how often it looks for nodes that joined while trials wait
SESSION_PREFIX = "lrlab_ray_"  # a private Ray's folder: lrlab_ray_<pid>_<random>
LOCK = "lab.lock"  # in it: locked by the process that uses the folder, for as long as it does
SWEEP_S = 10.0  # how long a sweep keeps killing a session's processes before it gives up


class RayUnavailable(LabError):
    """Ray is not installed, or its cluster cannot run the trials."""


# --------------------------------------------------------------------- a private Ray's folder
# These two functions also run in the janitor, a bare interpreter (python -I -S): os, signal,
# shutil and time only, imported inside.


def _session_pids(folder: str, spare: tuple[int, ...] = ()) -> list[int]:
    """The live processes of the Ray session in ``folder``, but ``spare``.

    Ray's servers name the folder on their command line; its agents and workers, retitled
    ``ray::...``, hold their log files in it open.
    """
    import os

    inside = folder.rstrip("/") + "/"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                args = fh.read().decode(errors="replace").split("\0")
            if any(inside in a or a.endswith(inside[:-1]) for a in args):
                found.append(int(name))
                continue
            for fd in os.listdir(f"/proc/{name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{name}/fd/{fd}").startswith(inside):
                        found.append(int(name))
                        break
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return found


def _sweep(folder: str, spare: tuple[int, ...] = ()) -> None:
    """Kill every process of the Ray session in ``folder`` (but ``spare``), then remove it."""
    import os
    import shutil
    import signal
    import time

    deadline = time.monotonic() + SWEEP_S
    while (pids := _session_pids(folder, (os.getpid(), *spare))) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)  # a killed process keeps its files open until it is gone
    shutil.rmtree(folder, ignore_errors=True)


_JANITOR_MAIN = """
import contextlib, os, select, signal, sys
SWEEP_S = {sweep_s!r}
signal.signal(signal.SIGINT, signal.SIG_IGN)
folder, lab = sys.argv[1], int(sys.argv[2])
waits = [0]  # stdin: the lab's end of the pipe; EOF when it closes it or dies
with contextlib.suppress(AttributeError, OSError):
    waits.append(os.pidfd_open(lab))  # and the lab's exit, should another process hold the pipe
while True:
    ready, _, _ = select.select(waits, [], [])
    if 0 in ready and os.read(0, 4096):
        continue
    if ready:
        break
_sweep(folder, (lab,))
"""


def _start_janitor(folder: str) -> subprocess.Popen | None:
    """A process that sweeps ``folder``'s Ray session once this process has ended or closed it.

    In a session of its own: a Ctrl-C to the terminal's process group, or a kill of the group,
    does not end it. It lives as long as this process, and costs a bare interpreter (a few MB).
    """
    source = "\n".join(
        ["from __future__ import annotations", "import contextlib", inspect.getsource(_session_pids), inspect.getsource(_sweep),
         _JANITOR_MAIN.format(sweep_s=SWEEP_S)]
    )  # fmt: skip
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", source, folder, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    except OSError:  # no janitor: the next start removes what a killed run leaves
        return None


def _remove_stale(tmp: str) -> None:
    """Sweep the private Ray folders in ``tmp`` that no process uses any more (lock not held).

    A folder without a lock file is left alone: one being made, or not the lab's.
    """
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(SESSION_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            fh = open(os.path.join(entry.path, LOCK), "rb")  # noqa: SIM115
        except OSError:
            continue
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a run uses it
                continue
            _sweep(entry.path)


@contextlib.contextmanager
def _private_folder() -> Iterator[str]:
    """A folder for a private Ray, locked and watched by a janitor while in use; then removed."""
    tmp = tempfile.gettempdir()
    _remove_stale(tmp)
    folder = tempfile.mkdtemp(prefix=f"{SESSION_PREFIX}{os.getpid()}_", dir=tmp)
    # Locked before it has its name, so no other start ever sees this folder's lock free.
    lock = open(os.path.join(folder, f".{LOCK}"), "wb")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.rename(os.path.join(folder, f".{LOCK}"), os.path.join(folder, LOCK))
    janitor = _start_janitor(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lock.close()
        if janitor is not None:
            janitor.stdin.close()  # its sweep finds nothing left, normally
            with contextlib.suppress(subprocess.TimeoutExpired):
                janitor.wait(timeout=SWEEP_S)


# --------------------------------------------------------------------------- the actors


class TrialWorker:
    """A Ray actor: trials one after another in one worker process, as a ``processes`` worker."""

    def __init__(self, scratch: str | None) -> None:
        import lr_lab.training.runner  # noqa: F401  the imports, before the first trial comes
        from lr_lab.training.trainer import quiet_lightning

        quiet_lightning()
        self.scratch = scratch if scratch and os.path.isdir(scratch) else None

    def run(self, specs: list[TrialSpec], index: int, init: bytes) -> tuple:
        """Spec ``index`` in a scratch folder: ``(True, result, files)`` or ``(False, error)``."""
        from lr_lab.training.runner import run_trial

        spec = specs[index]
        with tempfile.TemporaryDirectory(prefix="lr_lab_trial_", dir=self.scratch) as tmp:
            folder = Path(tmp) / f"seed{spec.seed}"
            folder.mkdir()
            (folder / "init.ckpt").write_bytes(init)
            local = replace(spec, init_path=str(folder / "init.ckpt"), log_dir=str(folder))
            try:
                result = run_trial(local)
            except SystemExit as err:  # a user's sys.exit(): this trial's error; the actor lives
                return (False, err)
            run = folder / spec.name
            files = {
                p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()
            }
        return (True, result, files)


def _slots(have: dict, cfg: RayConfig, n: int) -> int:
    """How many trials fit side by side on resources ``have`` (at least one, at most ``n``)."""
    fits = [
        math.floor(have.get(key, 0) / need + 1e-9)
        for key, need in (("CPU", cfg.cpus_per_trial), ("GPU", cfg.gpus_per_trial))
        if need > 0
    ]
    return max(1, min([n, *fits]))


def _died(err: BaseException, left: list[TrialSpec]) -> WorkerDied:
    names = ", ".join(spec.key for spec in left)
    if getattr(err, "actor_init_failed", False):  # e.g. lr_lab not importable on a node
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return WorkerDied(
            f"a Ray worker process could not start ({lines[-1] if lines else type(err).__name__}); "
            f"unfinished: {names}"
        )
    return WorkerDied(
        "a Ray worker process died (killed, out of memory, or its node was lost) while trials "
        f"ran; unfinished: {names}"
    )


def _write_run(spec: TrialSpec, files: dict[str, bytes]) -> None:
    run = Path(spec.log_dir) / spec.name
    run.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(run / name, data)


def _run_pool(
    ray: Any,
    specs: list[TrialSpec],
    cfg: RayConfig,
    scratch: str | None,
    on_result: Callable[[TrialResult], None],
    actors: list,
) -> None:
    """Hand the trials to actors as they free up; each result to ``on_result`` as it comes."""
    from ray.exceptions import RayError, RayTaskError

    remote = ray.remote(max_restarts=0, max_task_retries=0)(TrialWorker).options(
        num_cpus=cfg.cpus_per_trial, num_gpus=cfg.gpus_per_trial
    )
    specs_ref = ray.put(specs)
    inits = {s.seed: ray.put(Path(s.init_path).read_bytes()) for s in specs}
    queue = deque(range(len(specs)))
    busy: dict[Any, tuple[Any, int]] = {}  # the trial's future -> (actor, index)
    idle: list = []
    grown = -math.inf

    def grow() -> None:
        nonlocal grown
        grown = time.monotonic()
        want = _slots(ray.cluster_resources(), cfg, len(specs)) - len(actors)
        for _ in range(min(want, len(queue))):
            actor = remote.remote(scratch)
            actors.append(actor)
            idle.append(actor)

    while queue or busy:
        interrupt.check()  # first: nothing new starts after a stop request
        if queue and not idle and time.monotonic() - grown > GROW_S:
            grow()  # first, and then as nodes join a cluster
        while idle and queue:
            actor, index = idle.pop(), queue.popleft()
            busy[actor.run.remote(specs_ref, index, inits[specs[index].seed])] = (actor, index)
        done, _ = ray.wait(list(busy), num_returns=1, timeout=POLL_S)
        interrupt.check()
        errors, lost = [], []
        for ref in done:
            actor, index = busy.pop(ref)
            try:
                reply = ray.get(ref)
            except RayTaskError as err:  # the trial raised (its actor lives on)
                errors.append((index, getattr(err, "cause", None) or err))
                idle.append(actor)
                continue
            except RayError as err:  # its worker process died
                lost.append((index, err))
                continue
            idle.append(actor)
            if not reply[0]:
                errors.append((index, reply[1]))
                continue
            _, result, files = reply
            _write_run(specs[index], files)
            on_result(result)
        for index, err in sorted(errors, key=lambda e: e[0]):  # after this round's results
            raise TrialError(specs[index].key, err)
        if lost:
            left = sorted([i for i, _ in lost] + [i for _, i in busy.values()] + list(queue))
            raise _died(lost[0][1], [specs[i] for i in left])


# ------------------------------------------------------------------------------ the run


@contextlib.contextmanager
def _environment(local: bool) -> Iterator[None]:
    overrides = dict(QUIET_ENV)
    global _TOKEN
    if local and not (os.environ.get("RAY_AUTH_MODE") or os.environ.get("RAY_AUTH_TOKEN")):
        # A private Ray with token auth, quietly, without writing ~/.ray/auth_token; one token
        # per process (Ray caches the first it reads).
        _TOKEN = _TOKEN or secrets.token_hex(32)
        overrides.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_TOKEN)
    if local:
        # The lab, and a user's classes beside a script, importable in the workers: inherited
        # from the raylet this process starts. A job's runtime_env would do the same, but its
        # workers could not be the ones the raylet starts beforehand (3 s more per actor).
        paths = [p for p in sys.path if p and not p.startswith((sys.prefix, sys.base_prefix))]
        overrides["PYTHONPATH"] = os.pathsep.join(
            [*paths, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    saved = {k: os.environ.get(k) for k in (*overrides, "PYTHONBREAKPOINT")}
    os.environ.update(overrides)
    loggers = {n: logging.getLogger(n).level for n in ("ray",)}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # trial errors reach us as errors
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _ray_silent() -> Iterator[None]:
    """Nothing of Ray's on the terminal while trials run.

    ``log_to_driver=False`` keeps the workers' output away, but the driver's error listener
    still prints what the raylet publishes (``(raylet) A worker died or was killed ...``,
    ray/_private/worker.py ``listen_error_messages``): its printer returns early while Ray's
    own switch for this (set by ``ray.util.rpdb`` at a breakpoint) is off.
    """
    import ray._private.worker as ray_worker

    before = getattr(ray_worker, "_worker_logs_enabled", True)
    ray_worker._worker_logs_enabled = False
    try:
        yield
    finally:
        ray_worker._worker_logs_enabled = before


def _reread_auth_settings() -> None:
    """Make Ray read RAY_AUTH_MODE again (it reads it once, when first imported).

    Imported before we set it, the driver would not speak to its own token-auth cluster. Ray's
    own auth setup calls this (private) re-read after changing the mode.
    """
    with contextlib.suppress(Exception):  # moved or renamed in another Ray version
        from ray._raylet import Config

        Config.initialize("")


def _check_resources(ray: Any, cfg: RayConfig, local: bool) -> None:
    have = ray.cluster_resources()
    if cfg.cpus_per_trial <= have.get("CPU", 0) and cfg.gpus_per_trial <= have.get("GPU", 0):
        return
    message = (
        f"ray.cpus_per_trial = {cfg.cpus_per_trial:g}, ray.gpus_per_trial = "
        f"{cfg.gpus_per_trial:g}: the Ray cluster has {have.get('CPU', 0):g} CPU and "
        f"{have.get('GPU', 0):g} GPU, so no trial could start"
    )
    if local:  # a cluster may grow (autoscaler); a local Ray never does
        raise RayUnavailable(message)
    logging.getLogger("lr_lab").warning("%s; waiting for the cluster to grow", message)


def run_ray(
    specs: list[TrialSpec], cfg: RayConfig, on_result: Callable[[TrialResult], None]
) -> None:
    """Run ``specs`` on Ray actors; hand each result to ``on_result`` as it finishes.

    Raises:
        RayUnavailable: Ray is not installed, or no trial fits on the cluster.
        TrialError: A trial raised (the first, named).
        WorkerDied: A Ray worker process died; it names the unfinished trials.
        Interrupted: A stop was requested; unfinished trials stay pending.
    """
    local = cfg.address is None
    with _environment(local):
        already = "ray" in sys.modules
        try:
            import ray
        except ImportError:
            raise RayUnavailable(
                "trials.executor = 'ray' needs Ray: pip install -e '.[ray]'"
            ) from None
        started = not ray.is_initialized()
        private = local and started
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(_private_folder()) if private else None
            if started and already and "RAY_AUTH_TOKEN" in os.environ:
                _reread_auth_settings()
            stack.enter_context(_ray_silent())
            actors: list = []
            try:
                if started:
                    # A private Ray gets the cores this process may use (taskset, a container's
                    # share), as the processes executor does; Ray itself counts all of them.
                    extra = {"_temp_dir": folder, "num_cpus": usable_cores()} if folder else {}
                    ray.init(address=cfg.address, include_dashboard=False,
                             configure_logging=False, log_to_driver=False, **extra)  # fmt: skip
                _check_resources(ray, cfg, local)
                _run_pool(ray, specs, cfg, folder, on_result, actors)
            finally:
                if not private:  # a cluster's (or the user's) Ray: end our actors there
                    for actor in actors:
                        with contextlib.suppress(Exception):
                            ray.kill(actor, no_restart=True)
                if started:
                    ray.shutdown()
