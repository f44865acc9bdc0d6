"""Worker processes on this machine: one pool loop for trials and for the study's problems.

:func:`run_pool` hands an item to a worker only when one is free and no stop was asked for, so
a stop starts nothing new; results come back as they finish. Each worker is a process of its own
with a pipe of its own, so this process sees at once when one dies (its sentinel), and ends them
itself when it stops: nothing reaches into a library's private state. Workers are forked from
this process, so they start in milliseconds with everything already imported, as PyTorch's own
DataLoader workers do, when that is safe: CUDA not initialised here, and every trial on one
intra-op thread (a forked OpenMP team can hang; on one thread torch never enters it). Otherwise
they come from a fresh ``forkserver`` that imports the lab first (about 3 s).

The ``processes`` executor (:func:`run_processes`): each worker runs the same
:func:`~lr_lab.training.runner.run_trial` as the inline executor and writes its trial's
TensorBoard run itself. With ``trainer.accelerator`` a GPU, each worker owns one visible device
(``CUDA_VISIBLE_DEVICES``). Ctrl-C / SIGTERM: the workers ignore SIGINT (the terminal sends it to
the whole group); this process kills them (their trials are pending for ``--resume``, which
trains them again from ``init.ckpt``: the same numbers). A worker that dies (killed, out of
memory) is one line naming the trials not finished; the finished ones are kept. Workers die with
this process however it dies (``PR_SET_PDEATHSIG``, and the end of their pipe), so none is ever
orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from lr_lab import interrupt
from lr_lab.analysis.records import TrialResult
from lr_lab.errors import TrialError, WorkerDied
from lr_lab.training.problem import TrialSpec

POLL_S = 0.2  # how often the parent looks for a stop request while work runs


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Linux: the kernel sends ``sig`` to this worker when the parent process dies."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the end of the worker's pipe still ends it
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def init_worker(device: str | None = None, parent_death: int = signal.SIGKILL) -> None:
    """Set up a worker: one thread first, die with the parent, Ctrl-C is the parent's."""
    import torch

    torch.set_num_threads(1)  # first: a forked worker must not enter its parent's OpenMP team
    die_with_parent(parent_death)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a forked worker has the parent's handlers
        signal.signal(sig, signal.SIG_DFL)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before CUDA initialises
    from lr_lab.training.trainer import quiet_lightning

    quiet_lightning()


def _serve(
    conn: Connection, initializer: Callable[..., None], initargs: tuple, inherited: list[int]
) -> None:
    """A worker's loop: items in, ``(index, ok, value)`` out, until the pipe closes."""
    for fd in inherited:  # the other workers' pipes (forked copies): their end must be theirs
        with contextlib.suppress(OSError):
            os.close(fd)
    initializer(*initargs)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        index, fn, item = message
        try:
            reply = (index, True, fn(item))
        except BaseException as err:  # an Interrupted, a SystemExit from a user's code, ...
            reply = (index, False, err)
        try:
            conn.send(reply)
        except Exception as err:  # the error itself does not pickle: its one line does
            conn.send((index, False, RuntimeError(f"{type(reply[2]).__name__}: {err}")))


class Pool:
    """``workers`` processes of ``context``, each set up by ``initializer(*initargs[k])``."""

    def __init__(
        self,
        workers: int,
        context: mp.context.BaseContext,
        initializer: Callable[..., None],
        initargs: list[tuple],
    ):
        self.procs: list[mp.process.BaseProcess] = []
        self.conns: list[Connection] = []
        forked = context.get_start_method() == "fork"
        for k in range(workers):
            mine, theirs = context.Pipe()
            inherited = [c.fileno() for c in self.conns] + [mine.fileno()] if forked else []
            proc = context.Process(
                target=_serve, args=(theirs, initializer, initargs[k], inherited), daemon=True
            )
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.conns.append(mine)

    def stop(self, grace_s: float = 0.0) -> None:
        """End every worker: SIGTERM and ``grace_s`` to finish, then SIGKILL.

        A study's problem stops at a step and says so; a trial is trained again by ``--resume``.
        """
        if grace_s > 0:
            for proc in self.procs:
                if proc.is_alive():
                    proc.terminate()
            deadline = time.monotonic() + grace_s
            for proc in self.procs:
                proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join()
        for conn in self.conns:
            conn.close()


def run_pool(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    pool: Pool,
    on_result: Callable[[Any, Any], None],
    on_error: Callable[[Any, BaseException], None],
    name: Callable[[Any], str],
) -> None:
    """Run ``fn(item)`` for every item on the pool's workers; hand on each outcome as it comes.

    Raises:
        Interrupted: A stop was requested (nothing new was started after it).
        WorkerDied: A worker died; it names the items it and the queue had not finished.
    """
    queue = iter(enumerate(items))
    busy: dict[int, tuple[int, Any]] = {}  # worker -> (index, item)
    pending: list[tuple[int, Any]] = []
    while True:
        interrupt.check()  # first: a SIGHUP that also ended the workers is a stop, not a death
        for k in range(len(pool.procs)):
            if k not in busy and (job := next(queue, None)) is not None:
                index, item = job
                pool.conns[k].send((index, fn, item))
                busy[k] = job
        if not busy:
            return
        ready = wait([pool.conns[k] for k in busy] + [pool.procs[k].sentinel for k in busy],
                     timeout=POLL_S)  # fmt: skip
        interrupt.check()
        errors = []
        for k in list(busy):
            conn = pool.conns[k]
            if conn in ready or conn.poll():
                try:
                    _, ok, value = conn.recv()
                except (EOFError, OSError):
                    pending.append(busy.pop(k))
                    continue
                except Exception as err:  # noqa: BLE001 - a reply that does not unpickle here
                    ok, value = False, RuntimeError(f"its outcome could not be read back ({err})")
                _, item = busy.pop(k)
                if ok:
                    on_result(item, value)
                else:
                    errors.append((item, value))
            elif pool.procs[k].sentinel in ready:
                pending.append(busy.pop(k))
        for item, err in errors:  # after every result of this round is handed on
            on_error(item, err)
        if pending:
            left = [name(item) for _, item in sorted([*pending, *busy.values(), *queue])]
            raise WorkerDied(
                "a worker process died (killed, out of memory, or it could not start) while "
                f"work ran; unfinished: {', '.join(left)}"
            )


def _context(specs: list[TrialSpec], gpus: list[str]) -> mp.context.BaseContext:
    import torch

    one_thread = all(spec.threads == 1 for spec in specs)
    if sys.platform == "linux" and one_thread and not gpus and not torch.cuda.is_initialized():
        return mp.get_context("fork")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["lr_lab.training.runner"])
    return context


def cannot_send(specs: list[TrialSpec], gpus: list[str]) -> str | None:
    """Why the specs cannot reach worker processes (objects from Python), or None if they can.

    A forked worker has this process's ``__main__``; a fresh ``forkserver`` worker has not, so a
    class defined in a notebook or script cannot be imported there.
    """
    problem = specs[0].problem
    try:
        pickle.dumps(problem)
    except Exception as err:
        return f"the model or data object cannot be sent to worker processes ({type(err).__name__}: {err})"
    fresh = _context(specs, gpus).get_start_method() != "fork"
    main = [s.key for s in (problem.model, problem.data) if s.path.startswith("__main__.")]
    if fresh and main:
        return f"{' and '.join(main)} is defined in __main__, which a fresh worker process cannot import"
    return None


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use (``CUDA_VISIBLE_DEVICES``, else all torch sees)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _run(spec: TrialSpec) -> TrialResult:
    from lr_lab.training.runner import run_trial

    return run_trial(spec)


def run_processes(
    specs: list[TrialSpec], workers: int, gpus: list[str], on_result: Callable[[TrialResult], None]
) -> None:
    """Run ``specs`` on ``workers`` processes (one per GPU in ``gpus``, if any).

    Raises:
        Interrupted: A stop was requested; unfinished trials are left pending.
        WorkerDied: A worker process died; finished trials were handed to ``on_result``.
        TrialError: A trial raised (the first one, with its trial named).
    """
    if gpus:
        workers = min(workers, len(gpus))
    workers = min(workers, len(specs))
    devices = gpus[:workers] if gpus else [None] * workers
    pool = Pool(workers, _context(specs, gpus), init_worker, [(d,) for d in devices])

    def failed(spec: TrialSpec, err: BaseException) -> None:
        raise TrialError(spec.key, err)

    try:
        run_pool(_run, specs, pool, lambda _, result: on_result(result), failed,
                 lambda spec: spec.key)  # fmt: skip
    finally:
        pool.stop()
