"""Ctrl-C, SIGTERM and SIGHUP, turned into a clean stop at the next safe point; one run at a time.

A signal handler only records the request; training checks it once per step (from the
:class:`~lr_lab.training.recorder.LossRecorder`) and the experiment between trials. Raising
straight from the handler is not safe: the exception can land inside a ``__del__`` and be
swallowed, and Lightning wraps SIGTERM handlers with its own. A second signal, though, stops at
once (as Python's second Ctrl-C does): a ``training_step`` that never returns cannot check. So
does the first one, after ``GRACE_S`` seconds without a stop at a step.

The request belongs to the run that is in progress (:class:`Stop`): runs in one process take
turns (:func:`run_turn`), since a DataModule that shuffles from the global RNG would see another
run reseeding it. A run in a thread other than the main one cannot set signal handlers; it is
asked to stop when the interpreter shuts down (Ctrl-C in the main thread, then exit), so that
it ends ``interrupted`` rather than killed mid-write.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# A closed terminal (SIGHUP) stops the run like Ctrl-C does: status interrupted, resumable.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 10.0  # after the first signal, how long a run may take to reach a step and stop there


class Interrupted(BaseException):
    """The user asked the run to stop.

    A BaseException but not a KeyboardInterrupt, so Lightning re-raises it after its own teardown
    instead of calling ``sys.exit`` itself.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple:
        # Pickled from a worker process: rebuilt from the number, not from the message.
        return (Interrupted, (self.signum,))


class Stopped(KeyboardInterrupt):
    """A run a signal stopped; its folder says ``interrupted`` and can be finished.

    A KeyboardInterrupt, as Ctrl-C is to any Python program; the message says how to finish it.

    Attributes:
        signum: The signal.
        run_dir: The run folder.
        results: Its records as they were left (finished trials, ``pending``).
    """

    def __init__(self, signum: int, run_dir: Any, results: Any):
        super().__init__(f"stopped; finish with: lr_lab.resume({str(run_dir)!r})")
        self.signum, self.run_dir, self.results = signum, run_dir, results


class Stop:
    """One run's stop request: the signal that asked for it, once asked."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._timer: threading.Timer | None = None

    def request(self, signum: int) -> None:
        """Ask the run to stop (the first request's signal is kept)."""
        if self.signum is None:
            self.signum = signum

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: record the first signal; at the second, stop at once."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        self.request(signum)
        # A step that never comes (an endless training_step) must not keep the run forever.
        self._timer = threading.Timer(GRACE_S, _thread.interrupt_main, args=(signum,))
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        """Forget the grace timer (the run has stopped)."""
        if self._timer is not None:
            self._timer.cancel()


_current: Stop | None = None  # the run in progress in this process
_turn = threading.Lock()


def _forget_in_child() -> None:
    # A forked worker starts with no run in progress, whatever its parent was doing.
    global _current, _turn
    _current, _turn = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def requested() -> int | None:
    """The signal that asked the run in progress to stop, or ``None``."""
    stop = _current
    return None if stop is None else stop.signum


def check() -> None:
    """Raise :class:`Interrupted` if a stop was requested."""
    signum = requested()
    if signum is not None:
        raise Interrupted(signum)


@contextmanager
def run_turn(waiting: Callable[[], None] = lambda: None) -> Iterator[Stop]:
    """This process's one run at a time, with its own stop request; signals ask it to stop.

    Args:
        waiting: Called once if another run of this process is in progress (this one waits).

    Yields:
        The run's :class:`Stop`; :func:`requested` and :func:`check` read it until the block ends.
    """
    global _current
    if not _turn.acquire(blocking=False):
        waiting()
        _turn.acquire()
    stop = Stop()
    _current = stop
    main = threading.current_thread() is threading.main_thread()
    previous = {}
    try:
        if main:
            # A signal ignored when the run starts stays ignored (nohup; a worker whose Ctrl-C
            # is its parent's to act on).
            wanted = [sig for sig in SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
            previous = {sig: signal.signal(sig, stop.handler) for sig in wanted}
        else:
            # No handlers here: the interpreter's shutdown asks the run to stop instead (before
            # it waits for this thread, as concurrent.futures' workers are asked).
            try:
                threading._register_atexit(lambda: stop.request(signal.SIGINT))  # noqa: SLF001
            except RuntimeError:  # the interpreter is shutting down already: stop at once
                stop.request(signal.SIGINT)
        yield stop
    finally:
        stop.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _current = None
        _turn.release()


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """:func:`run_turn` for a process that runs one thing (a worker): the same, no waiting."""
    with run_turn() as stop:
        yield stop
