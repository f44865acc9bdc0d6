"""The ``processes`` executor: trials side by side in worker processes on this machine.

A :class:`concurrent.futures.ProcessPoolExecutor`. Its workers are forked from this process, so
they start in milliseconds with everything already imported, as PyTorch's own DataLoader workers
do, when that is safe: CUDA not initialised here, and every trial on one intra-op thread (a
forked OpenMP team can hang; on one thread torch never enters it). Otherwise they come from a
fresh ``forkserver`` that imports the lab first (about 3 s). Each worker runs the same
:func:`~lr_lab.runner.run_trial` as the inline executor and writes its trial's TensorBoard run
itself; results come back as they finish. With ``trainer.accelerator`` a GPU, each worker owns
one visible device (``CUDA_VISIBLE_DEVICES``).

Ctrl-C / SIGTERM: the workers ignore SIGINT (the terminal sends it to the whole group); this
process stops the pool and terminates the workers, and the trials they had not finished are
pending for ``--resume``. A worker that dies (killed, out of memory) breaks the pool: the trials
it and the others had not finished are reported, and the finished ones are kept. Workers die
with this process (``PR_SET_PDEATHSIG``), so none is ever orphaned.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable

from lr_lab import interrupt
from lr_lab.errors import TrialError, WorkerDied
from lr_lab.results import TrialResult
from lr_lab.spec import TrialSpec

POLL_S = 0.2  # how often the parent looks for a stop request while trials run


def die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this worker when the parent process dies."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the pool's own pipes still end idle workers
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def init_worker(devices: mp.Queue | None = None) -> None:
    """Set up a worker process: one thread first, die with the parent, Ctrl-C is the parent's."""
    import torch

    torch.set_num_threads(1)  # first: a forked worker must not enter its parent's OpenMP team
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a forked worker has the parent's handlers
        signal.signal(sig, signal.SIG_DFL)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())  # before CUDA initialises
    from lr_lab.trainer import quiet_lightning

    quiet_lightning()


def _run(spec: TrialSpec) -> TrialResult:
    from lr_lab.runner import run_trial

    return run_trial(spec)


def _context(specs: list[TrialSpec], gpus: list[str]) -> mp.context.BaseContext:
    import torch

    one_thread = all(spec.threads == 1 for spec in specs)
    if sys.platform == "linux" and one_thread and not gpus and not torch.cuda.is_initialized():
        return mp.get_context("fork")
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["lr_lab.runner"])
    return context


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use (``CUDA_VISIBLE_DEVICES``, else all torch sees)."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def run_processes(
    specs: list[TrialSpec], workers: int, gpus: list[str], on_result: Callable[[TrialResult], None]
) -> None:
    """Run ``specs`` on ``workers`` processes (one per GPU in ``gpus``, if any).

    Raises:
        Interrupted: A stop was requested; unfinished trials are left pending.
        WorkerDied: A worker process died; finished trials were handed to ``on_result``.
        TrialError: A trial raised (the first one, with its trial named).
    """
    context = _context(specs, gpus)
    devices = None
    if gpus:
        workers = min(workers, len(gpus))
        devices = context.Queue()
        for gpu in gpus[:workers]:
            devices.put(gpu)
    pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                  initargs=(devices,))  # fmt: skip
    try:
        futures = {pool.submit(_run, spec): spec for spec in specs}
        collect(futures, on_result)
    finally:
        stop_pool(pool)
        if devices is not None:
            devices.close()


def collect(futures: dict[cf.Future, TrialSpec], on_result: Callable[[TrialResult], None]) -> None:
    """Hand on every result as it comes; stop at a stop request, a dead worker or a failure.

    Every finished result is handed on before an error is raised, and a dead worker names all
    the trials not handed on (a broken pool fails them all at once).
    """
    waiting, handed = set(futures), set()
    while waiting:
        done, waiting = cf.wait(waiting, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
        interrupt.check()  # first: a SIGHUP that also ended the workers is a stop, not a death
        broken, failed = False, None
        for future in done:
            error = future.exception()
            if error is None:
                on_result(future.result())
                handed.add(future)
            elif isinstance(error, cf.process.BrokenProcessPool):
                broken = True
            elif failed is None:
                failed = TrialError(futures[future].key, error)
        if broken:
            left = sorted(spec.key for f, spec in futures.items() if f not in handed)
            raise WorkerDied(
                "a worker process died (killed, out of memory, or it could not start) while "
                f"trials ran; unfinished: {', '.join(left)}"
            )
        if failed is not None:
            raise failed


def stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (their trials stay pending)."""
    processes = list((pool._processes or {}).values())  # noqa: SLF001 - no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
