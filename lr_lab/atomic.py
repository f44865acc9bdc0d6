"""Files written atomically: a crash at any moment leaves the old file or the new one.

Never half of one, whether a crash, a full disk or a SIGKILL. Each file is written to a temporary name in the same folder, flushed to disk and renamed over its
final name (:func:`atomic_write`). Every file of a run folder (and of a study folder) is written
so. Imports nothing heavy.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".lr_lab-tmp"  # every temporary file of an atomic write ends so


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files get the mode a plain open() would give them (mkstemp's 0600 would hide results.json).
FILE_MODE = 0o666 & ~_umask()


def _named(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path``, not the temporary file the user never sees; other errors as is."""
    ours = err.filename in (None, str(path)) or str(err.filename).endswith(TMP_SUFFIX)
    if err.errno is None or not ours:
        return err  # about some other file (a font a library reads): its own name says more
    return OSError(err.errno, err.strerror, str(path))  # OSError(EEXIST) is a FileExistsError


@contextmanager
def atomic_file(path: Path, mode: str = "wb", exclusive: bool = False) -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    Args:
        path: The final file.
        mode: ``"wb"`` or ``"w"`` (UTF-8 text).
        exclusive: Fail with ``FileExistsError`` rather than replace an existing file.

    Yields:
        The open temporary file.

    Raises:
        OSError: The file cannot be written (a full or read-only disk, a folder in its place);
            the error names ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # atomic, and fails if the file exists
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _named(err, path) from err
        raise


def atomic_write(path: Path, data: bytes | str, exclusive: bool = False) -> Path:
    """Atomically write ``data`` (bytes, or text as UTF-8) to ``path``."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w", exclusive) as fh:
        fh.write(data)
    return Path(path)


def clean_temp(run_dir: Path) -> list[Path]:
    """Remove the temporary files a killed process left in the run folder, down to trial runs."""
    # The report's event files are written in each trial's TensorBoard run: seedN/<trial>/.
    patterns = (f".*{TMP_SUFFIX}", f"*/.*{TMP_SUFFIX}", f"*/*/.*{TMP_SUFFIX}")
    stale = [path for pattern in patterns for path in Path(run_dir).glob(pattern)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
