"""Ctrl-C, SIGTERM and SIGHUP, turned into a clean stop at the next safe point.

A signal handler only records the request; training checks it once per step (from the
:class:`~lr_lab.recorder.LossRecorder`) and the experiment between trials. Raising straight from the
handler is not safe: the exception can land inside a ``__del__`` and be swallowed, and Lightning
wraps SIGTERM handlers with its own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested: int | None = None
# A closed terminal (SIGHUP) stops the run like Ctrl-C does: status interrupted, resumable.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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


def _record(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is None:
        _requested = signum


def requested() -> int | None:
    """The signal that asked to stop, or ``None``."""
    return _requested


def check() -> None:
    """Raise :class:`Interrupted` if a stop was requested."""
    if _requested is not None:
        raise Interrupted(_requested)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP request a stop instead of killing the process.

    The request is readable with :func:`requested` until the block ends.
    """
    global _requested
    _requested = None
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; elsewhere signals keep their defaults
        return
    previous = {sig: signal.signal(sig, _record) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requested = None  # a stop asked for inside the block ends with it
