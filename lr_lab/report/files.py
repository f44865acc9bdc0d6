"""The report: the PNGs and the TensorBoard summary, recorded in ``results.json`` by hash.

A run is ``complete`` only once every report file exists; ``results.json`` then lists each one
with its sha256, so ``--resume`` can tell a missing or damaged file (a SIGKILL mid-report, a file
deleted by hand) and draw the report again. The console text lives in :mod:`lr_lab.report.table`.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from lr_lab.analysis.results import RunResults
from lr_lab.errors import RunDirError
from lr_lab.report.finder_plots import plot_lr_finder, plot_lr_sweep
from lr_lab.report.plots import plot_loss_curves
from lr_lab.report.tensorboard import clean_scratch, write_tensorboard


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_report(results: RunResults, run_dir: Path) -> list[Path]:
    """Draw the PNGs and write the TensorBoard summary; record every file's hash in ``results``.

    Args:
        results: The run, with its comparison made.
        run_dir: The run folder.

    Returns:
        The PNG files written.
    """
    clean_scratch(run_dir)
    with warnings.catch_warnings():
        # Matplotlib widens a flat curve's empty axis range itself, and says so on stderr.
        warnings.filterwarnings("ignore", message=".*identical low and high .*lims.*")
        pngs = [plot_loss_curves(results, run_dir / "loss_curves.png")]
        if results.finders:
            pngs += [
                plot_lr_finder(results, run_dir / "lr_finder.png"),
                plot_lr_sweep(results, run_dir / "lr_sweep.png"),
            ]
    files = pngs + write_tensorboard(results, run_dir, pngs)
    results.report = {str(p.relative_to(run_dir)): _sha256(p) for p in files}
    return pngs


def damaged_report(results: RunResults, run_dir: Path) -> list[str]:
    """The report files that are missing or differ from the hash recorded (none: []).

    Raises:
        RunDirError: Something other than a file (a folder) stands where a report file goes: a
            redrawn file could not replace it, and the lab removes nothing it did not write.
    """
    if not results.report:
        return ["(no report recorded)"]
    bad = []
    for name, sha in results.report.items():
        path = run_dir / name
        if path.exists() and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise RunDirError(f"{path}: {kind} where the report's file goes; move it away")
        if not path.is_file() or _sha256(path) != sha:
            bad.append(name)
    return bad


def pngs_of(results: RunResults, run_dir: Path) -> list[Path]:
    """The PNG files of a finished report."""
    return [run_dir / n for n in results.report if n.endswith(".png")]
