"""The user's CSV file, read with numpy alone: fast enough to check before anything heavy loads.

A file is parsed once per process while it stays unchanged (the check, every trial and the finder
of a run read the same file; parsing a large CSV costs seconds).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

import numpy as np

from lr_lab.errors import DataError


def read_csv(path: str | Path) -> np.ndarray:
    """Read a numeric CSV with a header row into a float32 array (rows, columns).

    Callers must not modify the returned array in place (it is cached).

    Raises:
        DataError: The file is missing, empty, not numeric, ragged, non-finite or has fewer than
            two columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.init_args.csv_path = {str(path)!r}: file not found")
    stat = path.stat()
    return _parse_csv(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _parse_csv(path_text: str, mtime_ns: int, size: int) -> np.ndarray:
    where = f"data.init_args.csv_path = {path_text!r}"
    try:
        with open(path_text, encoding="utf-8-sig") as fh:
            header = fh.readline()
            if not header.strip():
                raise DataError(f"{where}: the file is empty (expected a header row and data)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no data" is reported below, by name
                table = np.loadtxt(fh, delimiter=",", dtype=np.float32, ndmin=2)
    except UnicodeDecodeError:
        raise DataError(f"{where}: not a text CSV file") from None
    except ValueError as err:
        # numpy names the offending row; keep its first line only.
        raise DataError(f"{where}: not numeric ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise DataError(f"{where}: cannot read ({err.strerror or err})") from None
    n_cols = len(header.split(","))
    if table.size == 0:
        raise DataError(f"{where}: has a header but no data rows")
    if table.shape[1] != n_cols:
        raise DataError(f"{where}: header has {n_cols} columns, the rows have {table.shape[1]}")
    if n_cols < 2:
        raise DataError(f"{where}: needs at least 2 columns (features..., target), got {n_cols}")
    if not np.isfinite(table).all():
        raise DataError(f"{where}: contains non-finite values (nan or inf)")
    return table


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
