"""What the lab says on the terminal: progress lines that survive a closed pipe, one-line errors."""

from __future__ import annotations

import contextlib
import errno
import os
import sys

PROG = "lr-lab"


def null_closed_streams() -> None:
    """Give a closed stdin, stdout or stderr (``2>&-``) the null device: what goes there vanishes.

    Python sets ``sys.stderr`` to None when descriptor 2 is closed, which code that writes to it
    (a progress line, a library's warning) does not expect; and the next file opened would take
    descriptor 2, so what C code writes to stderr would land in that file.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115 - for good


class Console:
    """Lines to stdout that survive a closed pipe (``lr-lab | head -1``) or a full disk.

    Either way the run goes on: stdout only echoes what ``results.json`` records, so losing it
    must not cost the run. A closed pipe is the reader's choice and passes in silence; stdout on a
    full disk (``> /dev/full``) is said once on stderr, as the user did not choose to lose it.
    """

    def __init__(self) -> None:
        self.closed = False

    def line(self, text: str = "") -> None:
        """Print one line (or several), flushed; silently nothing once stdout is gone."""
        if self.closed:
            return
        try:
            print(text, flush=True)
        except OSError as err:
            self.closed = True
            if err.errno != errno.EPIPE:
                note(
                    f"stdout: {err.strerror or err}; the rest of the output is dropped, the run goes on"
                )
            # Python would complain again when it flushes stdout at exit.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def note(line: str) -> None:
    """One ``lr-lab: ...`` line on stderr that is not an error (the run goes on)."""
    _to_stderr(f"{PROG}: {line}")


def error(line: str) -> None:
    """One ``lr-lab: error: ...`` line on stderr (stderr closed: nothing to be done)."""
    _to_stderr(f"{PROG}: error: {line}")


def _to_stderr(line: str) -> None:
    if sys.stderr is None:  # print(file=None) would write to stdout instead
        return
    with contextlib.suppress(OSError):  # BrokenPipeError included
        print(line, file=sys.stderr, flush=True)
