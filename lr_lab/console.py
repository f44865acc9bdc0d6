"""What the lab says on the terminal: progress lines that survive a closed pipe, one-line errors."""

from __future__ import annotations

import contextlib
import os
import sys

PROG = "lr-lab"


class Console:
    """Lines to stdout that survive a closed pipe (``lr-lab | head -1``): the run goes on."""

    def __init__(self) -> None:
        self.closed = False

    def line(self, text: str = "") -> None:
        """Print one line (or several), flushed; silently nothing once stdout is gone."""
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True
            # Python would complain again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


def error(line: str) -> None:
    """One ``lr-lab: error: ...`` line on stderr (stderr closed: nothing to be done)."""
    with contextlib.suppress(BrokenPipeError, OSError):
        print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
