"""A private Ray's folder, locked while in use and swept, processes and all, once the lab ends.

Ray 2.60 kills its GCS server and raylet with the driver (PR_SET_PDEATHSIG), but its dashboard
and runtime-env agents outlive a killed driver by a minute or more; a janitor process, started
with the folder, kills whatever of the session is left and removes the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

SESSION_PREFIX = "lrlab_ray_"  # a private Ray's folder: lrlab_ray_<pid>_<random>
LOCK = "lab.lock"  # in it: locked by the process that uses the folder, as long as it does


def _sweep(folder: str, spare: tuple[int, ...] = (), seconds: float = 10.0) -> None:
    """Kill the processes of the Ray session in ``folder`` (but ``spare``), then remove it.

    Its servers name the folder on their command line; agents and workers hold logs in it open.
    """
    inside, deadline = os.path.realpath(folder) + "/", time.monotonic() + seconds

    def ours(pid: str) -> bool:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
        if any(inside in a or a.endswith(inside[:-1]) for a in args):
            return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(inside):
                    return True
        return False

    while time.monotonic() < deadline:
        found = []
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to look at
                found += [int(pid)] if int(pid) not in (*spare, os.getpid()) and ours(pid) else []
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not found:
            break
        time.sleep(0.05)  # a killed process holds its files until it is gone
    shutil.rmtree(folder, ignore_errors=True)


_JANITOR = """from __future__ import annotations
import contextlib, os, select, shutil, signal, sys, time
{sweep}
folder, lab = sys.argv[1], int(sys.argv[2])
waits = [0]  # stdin: the lab never writes, so it turns readable at EOF: the lab closed it or died
with contextlib.suppress(AttributeError, OSError):
    waits.append(os.pidfd_open(lab))  # or the lab's exit, should a child of it hold the pipe
select.select(waits, [], [])
_sweep(folder, (lab,))
"""


@contextlib.contextmanager
def private_folder() -> Iterator[str]:
    """A folder for a private Ray, locked while in use, swept by a janitor once this process ends.

    The janitor, a bare interpreter in a session of its own (no Ctrl-C or kill of this process
    group reaches it), waits for this process to close its pipe or die. Folders whose lock no
    process holds (their janitor killed too) are swept first.
    """
    with contextlib.suppress(OSError):
        for entry in os.scandir(tmp := tempfile.gettempdir()):
            with contextlib.suppress(OSError):  # no lock file: being made, or not the lab's
                if entry.name.startswith(SESSION_PREFIX) and entry.stat().st_uid == os.getuid():
                    with open(os.path.join(entry.path, LOCK), "rb") as fh:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: in use
                        _sweep(entry.path)
    folder = os.path.realpath(tempfile.mkdtemp(prefix=f"{SESSION_PREFIX}{os.getpid()}_", dir=tmp))
    lock = open(os.path.join(folder, f".{LOCK}"), "wb")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)  # locked before it has its name: never seen free
    os.rename(os.path.join(folder, f".{LOCK}"), os.path.join(folder, LOCK))
    janitor = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _JANITOR.format(sweep=inspect.getsource(_sweep)),
         folder, str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        lock.close()
        janitor.stdin.close()  # it sweeps what ray.shutdown() left (nothing, normally)
        with contextlib.suppress(subprocess.TimeoutExpired):
            janitor.wait(timeout=10)
