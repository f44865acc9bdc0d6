"""The command line: ``lr-lab`` / ``python scripts/run.py``.

    python scripts/run.py                                  # the defaults (configs/default.yaml)
    python scripts/run.py --config sweep --trials.max_epochs 5
    python scripts/run.py --resume runs/20261129-101500-default

Parses argv into the same request the Python API builds (:mod:`lr_lab.config.parse`), and runs
it through the same core (:func:`lr_lab.api.start`); this module only prints. All input is checked
first (light checks before torch loads; nothing is written when anything is wrong). Every failure
is one line on stderr; exit codes are in :mod:`lr_lab.errors`.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

from lr_lab.console import Console, error, null_closed_streams


def command() -> str:
    """How the user ran this: ``lr-lab``, or ``python scripts/run.py`` (for the resume hint)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("lr_lab"):  # python -m lr_lab.cli
        return f"python -m {spec.name}"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "lr-lab"
    name = Path(argv0).name
    if name in ("lr-lab", "__main__.py", "-c", "-m") or not name.endswith(".py"):
        return "lr-lab"
    try:
        shown = os.path.relpath(argv0)
    except ValueError:  # another drive (Windows)
        shown = argv0
    return f"python {shlex.quote(shown if not shown.startswith('..') else argv0)}"


def left_text(pending: list[str], shown: int = 4) -> str:
    """The work a stopped run left, its first few named: the resume command must stay in sight."""
    more = f" and {len(pending) - shown} more" if len(pending) > shown else ""
    return ", ".join(pending[:shown]) + more or "nothing"


def main(argv: list[str] | None = None) -> int:
    """Run ``lr-lab`` with ``argv`` (default: the command line) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    null_closed_streams()  # `lr-lab 2>&-`: a run without stderr still runs
    if argv[:1] == ["study"]:  # lr-lab study ...: the study (lr_lab/study/runner.py)
        from lr_lab.study.runner import main as study

        return study(argv[1:])
    from lr_lab.interrupt import Stopped

    try:
        return _main(argv, Console())
    except Stopped:
        raise  # _main says it; never here
    except KeyboardInterrupt:  # Ctrl-C before the run's folder existed (or a user's class)
        error("interrupted by Ctrl-C before the run started; nothing written")
        return 128 + signal.SIGINT


def _main(argv: list[str], console: Console) -> int:
    from lr_lab.config.command_line import help_text, parse_argv
    from lr_lab.config.files import dump_config
    from lr_lab.errors import LabError, UsageError, exit_code, one_line

    try:
        request = parse_argv(argv)
        if request.help:
            console.line(help_text())
            return 0
        from lr_lab import api

        if request.resume is not None:
            request = api.resume_request(request.resume, request.overrides)
        if request.print_config == "skip_check":
            console.line(dump_config(request.config).rstrip())
            return 0
        if request.print_config:
            api.check(request)
            console.line(dump_config(request.config).rstrip())
            return 0
    except UsageError as err:
        for line in str(err).splitlines():
            error(line)
        return exit_code(err)

    from lr_lab.interrupt import Stopped

    opened: dict = {}

    def on_open(run_dir: Path, results, work) -> None:  # noqa: ANN001
        opened.update(run_dir=run_dir, results=results)
        if request.resume is None:
            console.line(f"lr-lab: run folder {run_dir}")
            return
        left = "; nothing to do" if work.nothing else ""
        console.line(
            f"lr-lab: resuming {run_dir} ({results.status}): {len(results.trials)} trials done, "
            f"{len(results.pending)} known to be left{left}"
        )

    def waiting() -> None:
        console.line("lr-lab: waiting for the run in progress in this process")

    try:
        outcome = api.start(request, progress=console.line, on_open=on_open, waiting=waiting)
    except Stopped as stop:
        left = left_text(stop.results.pending)
        error(
            f"interrupted by {signal.Signals(stop.signum).name}; {len(stop.results.trials)} "
            f"finished trials are kept in {stop.run_dir / 'results.json'}; left: {left}. "
            f"Finish with: {command()} --resume {shlex.quote(str(stop.run_dir))}"
        )
        return 128 + stop.signum
    except UsageError as err:
        for line in str(err).splitlines():
            error(line)
        return exit_code(err)
    except (LabError, OSError, Exception) as err:
        run_dir = opened.get("run_dir")
        if run_dir is None:
            error(one_line(err))
            return exit_code(err)
        from lr_lab.experiment.session import ERROR_LOG

        status = opened["results"].status
        log = run_dir / ERROR_LOG
        where = f" (details in {log})" if log.is_file() and status == "failed" else ""
        error(f"{one_line(err)}{where}{_unrecorded(run_dir, status)}")
        return exit_code(err)
    if outcome.repaired:
        console.line(f"lr-lab: redrew the report ({', '.join(outcome.repaired)})")
    _print_answer(console, outcome.run_dir, outcome.results, outcome.pngs)
    return 0


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
    from lr_lab.report.progress import describe_search
    from lr_lab.report.table import answer, format_table
    from lr_lab.report.tensorboard import summary_links

    console.line()
    console.line(format_table(results))
    if results.searches:
        console.line('The race (README, "The search"):')
        for search in results.searches:
            console.line(f"  seed {search.seed}: {describe_search(search)}")
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
