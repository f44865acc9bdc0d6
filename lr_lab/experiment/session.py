"""A run's life in its folder: one sequence for every caller.

Take this process's turn and the signals, create (or reopen and lock) the folder, see what is
left, run it, report, and keep the status true whatever happens.

The command line, the Python API and the study's workers all call :func:`run_session`. The status
in ``results.json`` is ``running`` while a process works, ``interrupted`` after a signal (with
``pending`` listing what is left), ``failed`` after an error (with ``error`` and ``error.log``),
and ``complete`` only once the comparison and every report file exist.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import torch

from lr_lab import interrupt
from lr_lab.analysis.results import RunResults, read_results, write_results
from lr_lab.atomic import atomic_write, clean_temp
from lr_lab.config.files import dump_config
from lr_lab.config.schema import ExperimentConfig
from lr_lab.errors import one_line
from lr_lab.experiment.folder import RunLock, new_run_dir
from lr_lab.experiment.orchestrate import run_experiment
from lr_lab.experiment.resume import Todo, check_objects, check_resume, todo
from lr_lab.report.files import pngs_of, write_report
from lr_lab.training.problem import Experiment
from lr_lab.training.trainer import quiet_lightning
from lr_lab.version import __version__

ERROR_LOG = "error.log"
REPORT = "report"  # the pending entry for the report
Progress = Callable[[str], None]


@dataclass
class Outcome:
    """What a session did: the folder, the records, and what the report drew or repaired."""

    run_dir: Path
    results: RunResults
    pngs: list[Path] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    resumed: bool = False
    nothing: bool = False  # a resumed run that was complete and intact: nothing was done


def new_results(
    cfg: ExperimentConfig, init_source: Path | None = None, objects: dict[str, str] | None = None
) -> RunResults:
    """An empty record for a run about to start."""
    return RunResults(
        objects=dict(objects or {}),
        lr_lab_version=__version__,
        lightning_version=L.__version__,
        torch_version=torch.__version__,
        config=asdict(cfg),
        seeds=cfg.seed_list,
        init_source=str(init_source) if init_source else "",
        metric=cfg.metric,
        metric_mode=cfg.metric_mode,
    )


def _open(
    exp: Experiment, out: Path, name: str, folder: Path | None, resume: bool
) -> tuple[Path, RunResults, RunLock]:
    """A new run folder (config.yaml, results.json) or the resumed one, locked."""
    if resume:
        run_dir = Path(folder)
        lock = RunLock(run_dir).acquire()
        try:
            clean_temp(run_dir)  # what a killed process was writing: the old file still stands
            results = read_results(run_dir)
            check_resume(run_dir, exp.cfg, results.config)
            check_objects(run_dir, results.objects, exp.problem.objects())
        except BaseException:
            lock.release()
            raise
        return run_dir, results, lock
    if folder is not None:
        folder.mkdir(parents=True)  # a new name: an existing folder is a resume, not this
        run_dir = folder
    else:
        run_dir = new_run_dir(out, name)
    lock = RunLock(run_dir).acquire()
    try:
        atomic_write(run_dir / "config.yaml", dump_config(exp.cfg))
        results = new_results(
            exp.cfg, exp.init.resolve() if exp.init else None, exp.problem.objects()
        )
        write_results(run_dir, results)
    except BaseException:
        lock.release()
        raise
    return run_dir, results, lock


def run_session(
    exp: Experiment,
    *,
    out: Path = Path("runs"),
    name: str = "default",
    folder: Path | None = None,
    resume: bool = False,
    progress: Progress = lambda line: None,
    on_open: Callable[[Path, RunResults, Todo], None] | None = None,
    waiting: Callable[[], None] = lambda: None,
) -> Outcome:
    """Run (or finish) ``exp`` in its folder, from the signals to the report.

    Args:
        exp: What to run.
        out: Where a new run folder ``<time>-<name>`` goes.
        name: The new folder's name after its time stamp.
        folder: The folder to create (a study's problem), or to finish with ``resume``.
        resume: Finish ``folder``: only what is missing runs.
        progress: Called with one line per finished step.
        on_open: Called once the folder is open and what is left is known.
        waiting: Called if another run of this process is in progress (this one waits for it).

    Raises:
        interrupt.Stopped: A signal stopped the run; its folder says ``interrupted``.
        LabError: A one-line failure (the status says ``failed`` where it could be written).
    """
    quiet_lightning()
    with interrupt.run_turn(waiting) as stop:
        run_dir, results, lock = _open(exp, out, name, folder, resume)
        try:
            work = todo(exp.cfg, results, run_dir)
            if on_open is not None:
                on_open(run_dir, results, work)
            if work.nothing:
                return Outcome(run_dir, results, pngs_of(results, run_dir), resumed=True,
                               nothing=True)  # fmt: skip
            try:
                return _finish(exp, run_dir, results, progress, work, resume)
            except BaseException:
                if stop.signum is not None:
                    raise interrupt.Stopped(stop.signum, run_dir, results) from None
                raise
        finally:
            lock.release()


def _finish(
    exp: Experiment,
    run_dir: Path,
    results: RunResults,
    progress: Progress,
    work: Todo,
    resumed: bool,
) -> Outcome:
    """Do what ``work`` says is left, then mark the run complete.

    On any exception the status is left truthful (``interrupted`` or ``failed``, with ``error``
    and ``error.log``) before it propagates.
    """
    outcome = Outcome(run_dir, results, resumed=resumed)
    try:
        if work.training:
            init = Path(results.init_source) if results.init_source else None
            results = run_experiment(exp.cfg, exp.problem, exp.fit, run_dir, init_path=init,
                                     results=results, progress=progress)  # fmt: skip
            outcome.results = results
        if work.report:
            results.status, results.pending = "running", [REPORT]
            write_results(run_dir, results)
            interrupt.check()
            outcome.pngs = write_report(results, run_dir)
            outcome.repaired = work.report if resumed and not work.training else []
            results.status, results.pending = "complete", []
            write_results(run_dir, results)
        else:
            outcome.pngs = pngs_of(results, run_dir)
        return outcome
    except BaseException as err:
        mark_stopped(run_dir, results, err)
        raise


def mark_stopped(run_dir: Path, results: RunResults, err: BaseException) -> None:
    """Record why the run stopped: ``interrupted`` by a signal, else ``failed`` with the error."""
    if interrupt.requested() is not None:
        results.status = "interrupted"
    else:
        results.status = "failed"
        results.error = one_line(err)
    # The status first: on a nearly full disk the traceback must not take the last free pages.
    with contextlib.suppress(OSError):  # a full or read-only disk; the caller says so
        write_results(run_dir, results)
    if results.status == "failed":
        with contextlib.suppress(OSError):  # a full disk: the one line on the console must do
            atomic_write(run_dir / ERROR_LOG, "".join(traceback.format_exception(err)))
