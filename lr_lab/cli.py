"""The command line: ``lr-lab`` / ``python scripts/run.py``.

    python scripts/run.py                                  # configs/default.yaml
    python scripts/run.py --config sweep --trials.max_epochs 5
    python scripts/run.py --resume runs/20261129-101500-default

Checks all input first (fast; nothing is written when anything is wrong), then creates a new run
folder, runs the experiment, writes the report and prints the comparison. Every failure is one
line on stderr; exit codes are in :mod:`lr_lab.errors`. Signals are caught from the very start, so
a Ctrl-C at any moment stops cleanly.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path

from lr_lab import interrupt
from lr_lab.console import PROG, Console, error, null_closed_streams


def main(argv: list[str] | None = None) -> int:
    """Run ``lr-lab`` with ``argv`` (default: the command line) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    null_closed_streams()  # `lr-lab 2>&-`: a run without stderr still runs
    if argv[:1] == ["study"]:  # lr-lab study ...: the rule study (lr_lab/study.py)
        from lr_lab.study import main as study

        return study(argv[1:])
    with interrupt.stop_on_signals():
        return _main(argv, Console())


def _stopped_early() -> int | None:
    signum = interrupt.requested()
    if signum is None:
        return None
    error(f"interrupted by {signal.Signals(signum).name} before the run started; nothing written")
    return 128 + signum


def _main(argv: list[str], console: Console) -> int:
    from lr_lab.config_files import dump_config
    from lr_lab.errors import LabError, UsageError, exit_code, one_line
    from lr_lab.validate import validate

    try:
        inv = validate(argv)
    except UsageError as err:
        for line in str(err).splitlines():
            error(line)
        return exit_code(err)
    except KeyboardInterrupt:  # raised by a user's class while it is imported or tried
        error("interrupted (KeyboardInterrupt) before the run started; nothing written")
        return 128 + signal.SIGINT
    if (code := _stopped_early()) is not None:
        return code
    if inv.print_config:
        console.line(dump_config(inv.cfg).rstrip())
        return 0

    from lr_lab.launch import ERROR_LOG, finish, open_run, todo
    from lr_lab.trainer import quiet_lightning

    quiet_lightning()
    if (code := _stopped_early()) is not None:
        return code
    try:
        run_dir, results, lock = open_run(inv)
    except (LabError, OSError) as err:
        error(one_line(err))
        return exit_code(err)
    try:
        try:
            work = todo(inv, results, run_dir)
        except LabError as err:
            error(one_line(err))
            return exit_code(err)
        if inv.resume is not None:
            console.line(
                f"{PROG}: resuming {run_dir} ({results.status}): {len(results.trials)} trials "
                f"done, {len(results.pending)} known to be left"
                + ("; nothing to do" if work.nothing else "")
            )
            if work.nothing:
                _print_answer(console, run_dir, results, [])
                return 0
        else:
            console.line(f"{PROG}: run folder {run_dir}")
        try:
            outcome = finish(inv, run_dir, results, console.line, work)
        except BaseException as err:
            signum = interrupt.requested()
            if signum is not None:
                left = ", ".join(results.pending) or "nothing"
                error(
                    f"interrupted by {signal.Signals(signum).name}; {len(results.trials)} finished "
                    f"trials are kept in {run_dir / 'results.json'}; left: {left}. "
                    f"Finish with: {PROG} --resume {shlex.quote(str(run_dir))}"
                )
                return 128 + signum
            if not isinstance(err, Exception):
                raise
            log = run_dir / ERROR_LOG
            where = f" (details in {log})" if log.is_file() and results.status == "failed" else ""
            error(f"{one_line(err)}{where}{_unrecorded(run_dir, results.status)}")
            return exit_code(err)
        if outcome.repaired:
            console.line(f"{PROG}: redrew the report ({', '.join(outcome.repaired)})")
        _print_answer(console, run_dir, outcome.results, outcome.pngs)
        return 0
    finally:
        lock.release()


def _unrecorded(run_dir: Path, status: str) -> str:
    """What ``results.json`` says instead of ``status`` when it could not be rewritten, or "".

    A full disk may not take even the new ``results.json``; the old one is then kept whole, and
    the one line says the status in it is stale rather than leave it to be believed.
    """
    try:
        recorded = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if recorded == status:
        return ""
    return f"; results.json could not be updated: it still says {recorded}"


def _print_answer(console: Console, run_dir: Path, results, pngs: list[Path]) -> None:  # noqa: ANN001
    from lr_lab.report import pngs_of
    from lr_lab.table import answer, format_table
    from lr_lab.tb_report import summary_links

    pngs = pngs or pngs_of(results, run_dir)
    console.line()
    console.line(format_table(results))
    console.line()
    console.line(answer(results))
    console.line()
    files = ", ".join(["results.json", "config.yaml", *(p.name for p in pngs)])
    console.line(f"Run folder: {run_dir}  ({files})")
    console.line(f"TensorBoard: tensorboard --logdir {shlex.quote(str(run_dir))}")
    for what, url in summary_links().items():
        console.line(f"  {what + ':':<26} {url}")


if __name__ == "__main__":
    sys.exit(main())
