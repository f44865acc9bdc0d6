"""The run folder: created fresh, and locked while a process works in it.

A run folder (``runs/<timestamp>-<config>/``) is the unit of truth of one experiment; every file
in it is written atomically (:mod:`lr_lab.atomic`). One process at a time works in a folder
(:class:`RunLock`). Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path

from lr_lab.errors import RunDirError

try:
    import fcntl
except ImportError:  # Windows: no flock; a folder is then not guarded against a second process
    fcntl = None


def check_out_dir(out: Path) -> str | None:
    """Why no run folder can be made under ``out`` (tried with real bytes), or None if it can.

    Nothing is created: where ``out`` does not exist yet, its nearest existing folder is tried
    (the run creates ``out`` once every check has passed).
    """
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"--out {out}: {probe} is not a folder"
    try:
        # Real bytes: a full disk accepts an empty file but not 64 KiB.
        with tempfile.TemporaryFile(dir=probe) as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        return f"--out {out}: cannot write there ({err.strerror or err})"
    return None


def new_run_dir(out: Path, name: str) -> Path:
    """Create a fresh run folder ``out/<timestamp>-<name>``; never reuse an existing one."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        run_dir = out / (f"{stamp}-{name}" if n == 1 else f"{stamp}-{name}-{n}")
        try:
            run_dir.mkdir()  # atomic: two runs started together get distinct folders
            return run_dir
        except FileExistsError:
            continue
    raise RunDirError(f"{out}: could not create a new run folder")


def _flock_holder(path: Path) -> str:
    """The pid holding a flock on ``path``, from /proc/locks (Linux), or "another process"."""
    try:
        st = os.stat(path)
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii") as fh:
            for line in fh:
                parts = line.split()
                if "FLOCK" in parts and len(parts) > 5 and parts[5] == dev:
                    return f"pid {parts[4]}"
    except (OSError, ValueError):
        pass
    return "another process"


_HELD: set[int] = set()  # the descriptors of the locks this process holds


def _forget_locks_in_child() -> None:
    # A forked child (a worker) shares each held folder's open description, and so its flock: a
    # worker outliving its parent would keep the folder locked. The child closes its copies;
    # the parent's lock stands on its own descriptor.
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


class RunLock:
    """An exclusive ``flock`` on the run folder itself while a process works in it.

    The kernel drops the lock when the process dies, however it dies, so nothing stale can block
    a later ``--resume``; and locking the folder writes no file into it. Forked children do not
    hold it (:func:`_forget_locks_in_child`).
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunDirError` naming the process that holds it."""
        if fcntl is None:
            return self  # nothing to lock with (Windows)
        try:
            fd = os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            raise RunDirError(f"{self.run_dir}: cannot open ({err.strerror or err})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(
                    f"{self.run_dir}: in use by {_flock_holder(self.run_dir)} "
                    "(one process per run folder)"
                ) from None
            raise
        self._fd = fd
        _HELD.add(fd)
        return self

    def release(self) -> None:
        """Drop the lock (in a forked child, whose copy is closed already: nothing)."""
        if self._fd in _HELD:
            _HELD.discard(self._fd)
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
