"""A run's life in its folder: create or reopen it, lock it, run, report, keep its status true.

Shared by the command line (:mod:`lr_lab.cli`) and the Python API (:func:`lr_lab.run`). The
status in ``results.json`` is ``running`` while a process works, ``interrupted`` after a signal
(with ``pending`` listing what is left), ``failed`` after an error (with ``error``), and
``complete`` only once the comparison and every report file exist.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lr_lab import interrupt
from lr_lab.arguments import Invocation
from lr_lab.comparison import compare
from lr_lab.config_files import dump_config
from lr_lab.errors import InitStateError, one_line
from lr_lab.experiment import new_results, run_experiment
from lr_lab.initial_state import read_initial_state, weights_sha256
from lr_lab.plan import INIT_FILE, check_plan, plan_pending, rule_names, seed_dir
from lr_lab.report import damaged_report, pngs_of, write_report
from lr_lab.results import RunResults, TrialResult, read_results, write_results
from lr_lab.rundir import RunLock, atomic_write, clean_temp, new_run_dir
from lr_lab.tb_report import REPORT_EVENTS
from lr_lab.validate import check_resume

ERROR_LOG = "error.log"
REPORT = "report"  # the pending entry for the report


@dataclass
class Outcome:
    """What a launch did: the folder, the records, and what the report drew or repaired."""

    run_dir: Path
    results: RunResults
    pngs: list[Path] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    resumed: bool = False


def open_run(inv: Invocation, folder: Path | None = None) -> tuple[Path, RunResults, RunLock]:
    """A new run folder (config.yaml, results.json) or the resumed one, locked.

    Args:
        inv: What to run (``inv.resume``: the folder to finish).
        folder: A new run's folder by name (the study's), instead of ``out/<time>-<config>``.

    Raises:
        RunDirError: The folder is in use by another process.
        ResultsError: A resumed folder's ``results.json`` is damaged.
        UsageError: A resumed folder's config was edited since it started.
    """
    if inv.resume is not None:
        run_dir = Path(inv.resume)
        lock = RunLock(run_dir).acquire()
        try:
            clean_temp(run_dir)  # what a killed process was writing: the old file still stands
            results = read_results(run_dir)
            check_resume(inv, results.config)
        except BaseException:
            lock.release()
            raise
        return run_dir, results, lock
    if folder is not None:
        folder.mkdir(parents=True)  # a new name: an existing folder is a resume, not this
        run_dir = folder
    else:
        run_dir = new_run_dir(Path(inv.out), inv.config_name)
    lock = RunLock(run_dir).acquire()
    try:
        atomic_write(run_dir / "config.yaml", dump_config(inv.cfg))
        init = Path(inv.init).resolve() if inv.init else None
        results = new_results(inv.cfg, init)
        write_results(run_dir, results)
    except BaseException:
        lock.release()
        raise
    return run_dir, results, lock


@dataclass
class Todo:
    """What a run still needs: training (trials, finders, checks) and report files."""

    training: bool
    report: list[str]

    @property
    def nothing(self) -> bool:
        """Whether the run is complete and intact."""
        return not self.training and not self.report


def todo(inv: Invocation, results: RunResults, run_dir: Path) -> Todo:
    """What is left of a run (a new run: everything).

    Raises:
        ResultsError: ``results.json`` holds a trial the plan does not contain.
    """
    check_plan(inv.cfg, results, run_dir)
    unsound = [
        t for t in results.trials if not t.diverged and not _finite(t.train_loss + t.val_loss)
    ]
    if unsound:  # an earlier lr_lab kept a non-finite metric without calling it divergence
        results.trials = [t for t in results.trials if t not in unsound]  # trained again
    if lost := _lost_curves(results, run_dir):  # trained again: the same numbers, and the curves
        results.trials = [t for t in results.trials if t not in lost]
    if (
        unsound
        or lost
        or results.status != "complete"
        or plan_pending(inv.cfg, results, run_dir)
        or not all(_init_intact(run_dir, seed, results) for seed in inv.cfg.seed_list)
    ):
        return Todo(training=True, report=["all"])
    results.comparison = compare(results, rule_names(inv.cfg))
    return Todo(training=False, report=damaged_report(results, run_dir))


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _lost_curves(results: RunResults, run_dir: Path) -> list[TrialResult]:
    """Trials whose TensorBoard run (their training curves) is gone from the run folder.

    A batched trial takes the rest of its stack with it: trained again together, the copies
    give the numbers they gave (a smaller stack might differ in the last bits).
    """
    lost = [
        t
        for t in results.trials
        if not [
            p
            for p in (run_dir / t.tb_run).glob("events.out.tfevents.*")
            if p.name != REPORT_EVENTS  # the report's events are the report's to redraw
        ]
    ]
    stacks = {(t.seed, t.role) for t in lost if t.batched}
    return [t for t in results.trials if t in lost or (t.batched and (t.seed, t.role) in stacks)]


def _init_intact(run_dir: Path, seed: int, results: RunResults) -> bool:
    """Whether ``seedN/init.ckpt`` is there and holds the weights the run recorded.

    If not, the training pass makes it again (and proves it the same) or says it changed.
    """
    try:
        state = read_initial_state(seed_dir(run_dir, seed) / INIT_FILE)["state_dict"]
    except InitStateError:
        return False
    return weights_sha256(state) == results.init_sha256.get(str(seed))


def finish(
    inv: Invocation,
    run_dir: Path,
    results: RunResults,
    progress: Callable[[str], None],
    work: Todo,
) -> Outcome:
    """Do what ``work`` says is left, then mark the run complete.

    On any exception the status is left truthful (``interrupted`` or ``failed``, with ``error``
    and ``error.log``) before it propagates.
    """
    outcome = Outcome(run_dir, results, resumed=inv.resume is not None)
    try:
        if work.training:
            init = Path(results.init_source) if results.init_source else None
            results = run_experiment(
                inv.cfg, run_dir, init_path=init, results=results, progress=progress
            )
            outcome.results = results
        if work.report:
            results.status, results.pending = "running", [REPORT]
            write_results(run_dir, results)
            interrupt.check()
            outcome.pngs = write_report(results, run_dir)
            outcome.repaired = work.report if outcome.resumed and not work.training else []
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
