"""Which finder rule should you trust? One command runs the lab on a matrix of problems.

    python scripts/study.py                      # configs/study.yaml, into studies/<time>-study
    python scripts/study.py --quick --out DIR    # a one-minute subset
    python scripts/study.py --resume studies/20261130-220000-study

Every problem (built-in functions x inputs x optimizers x batch sizes x data sizes, plus whole
experiment configs such as the digits example) is an ordinary lr_lab run, in its own folder under
``runs/``, with a dense fixed grid as the oracle, Lightning's finder, and every rule on both finder
curves trained as checks. Problems run side by side in worker processes. ``study.json`` then holds
each rule's regret on each problem and seed, naming the trial it came from; ``study.md`` the
tables; ``study.png`` the regret distributions. Resumable: finished runs are kept, the others
finished; ``sessions.json`` keeps each session's time, and ``study.json`` reports them all.

A stop (Ctrl-C, SIGTERM, SIGHUP; or this process's death, which the kernel turns into SIGTERM
for the workers) starts no new problem: a problem is handed to a worker only when one is free
and no stop was asked for, and a worker that was asked to stop ends once its problem stopped at
a step (left ``interrupted``, resumable).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lr_lab import interrupt
from lr_lab.config.files import read_yaml_mapping, resolve_config
from lr_lab.errors import UsageError
from lr_lab.study.config import (
    Problem,
    StudyConfig,
    check_problems,
    grid_lrs,
    load_study,
    parse_study,
    problems,
)
from lr_lab.study.report import FILES, Session, damaged_report, up_to_date, write_study

STUDY_FILE = "study.yaml"  # in a study folder: the study as it started (resume reads it)
# A stop asks each running problem to stop at its next step (milliseconds); one that does not
# (a user's endless training_step) is killed after this, its folder left resumable.
STOP_GRACE_S = 15.0


def _run_problem(job: tuple[Problem, str]) -> bool:
    """One problem's lr_lab run, in a worker; returns whether it trained anything.

    A stop request (SIGTERM from this study, or this study's death) stops the problem at its
    next step (``interrupted``) and then ends the worker: it must not take another problem, nor
    outlive a dead parent waiting for one.
    """
    problem, run_dir = job
    try:
        return _run_one(problem, Path(run_dir))
    except interrupt.Stopped as stop:
        os._exit(128 + stop.signum)


def _run_one(problem: Problem, folder: Path) -> bool:
    from lr_lab import api

    if folder.exists() and not (folder / "results.json").is_file():
        shutil.rmtree(folder)  # killed before its first record: nothing to keep
    if folder.exists():
        request = api.resume_request(folder)
    else:
        request = problem.request()
        request.out = str(folder.parent)
    return not api.start(request, folder=folder).nothing


def run_problems(
    study: list[Problem], root: Path, workers: int, say: Callable[[str], None],
    trained: Callable[[], None],
) -> list[str]:  # fmt: skip
    """Run every problem on ``workers`` processes; return the names of those that failed.

    A problem is handed to a worker only when one is free and no stop was asked for
    (:func:`~lr_lab.executors.pool.run_pool`). ``trained`` is called after each problem that
    trained something. A stop asks the running problems to stop at a step (SIGTERM), so their
    folders say ``interrupted``.
    """
    from lr_lab.errors import WorkerDied, one_line
    from lr_lab.executors.pool import Pool, init_worker, run_pool

    failed: list[str] = []
    done, start = [0], time.perf_counter()
    width = len(str(len(study)))

    def finished(job: tuple[Problem, str], did_train: bool) -> None:
        done[0] += 1
        if did_train:
            trained()
        say(f"  [{done[0]:>{width}}/{len(study)}] {job[0].name:<34} "
            f"{time.perf_counter() - start:6.0f} s")  # fmt: skip

    def broke(job: tuple[Problem, str], err: BaseException) -> None:
        done[0] += 1
        failed.append(job[0].name)
        say(f"  [{done[0]}/{len(study)}] {job[0].name}: FAILED: {one_line(err)}")

    # Forked, as the trials' workers are: this process trained nothing, and each worker starts
    # on one thread; a problem's trials then pick their own. A worker outliving this process is
    # asked to stop as Ctrl-C would ask it (SIGTERM), so its folder says interrupted.
    workers = max(1, min(workers, len(study)))
    pool = Pool(workers, mp.get_context("fork"), init_worker,
                [(None, signal.SIGTERM)] * workers)  # fmt: skip
    jobs = [(problem, str(root / "runs" / problem.name)) for problem in study]
    try:
        run_pool(_run_problem, jobs, pool, finished, broke, lambda job: job[0].name)
    except WorkerDied as err:
        left = str(err).split("unfinished: ", 1)[1].split(", ")
        say(f"  not finished (a worker process died): {', '.join(left)}")
        failed += left
    finally:
        pool.stop(grace_s=STOP_GRACE_S)
    return failed


def collect(root: Path, study: list[Problem]) -> list:
    """Every problem-seed record of the finished runs (see :mod:`lr_lab.study.stats`)."""
    from lr_lab.analysis.results import read_results
    from lr_lab.study.stats import problem_seeds

    records = []
    for problem in study:
        run_dir = root / "runs" / problem.name
        results = read_results(run_dir)
        records += problem_seeds(results, problem.name, f"runs/{problem.name}", problem.family,
                                 problem.families)  # fmt: skip
    return records


def main(argv: list[str] | None = None) -> int:
    """``lr-lab study`` / ``python scripts/study.py``; returns the exit code."""
    from lr_lab.console import Console, error
    from lr_lab.errors import LabError, exit_code, one_line

    console = Console()
    with interrupt.stop_on_signals():
        try:
            return _main(sys.argv[1:] if argv is None else list(argv), console)
        except UsageError as err:
            for line in str(err).splitlines():
                error(line)
            return exit_code(err)
        except (LabError, OSError) as err:  # a folder in use, a full disk, ...
            error(one_line(err))
            return exit_code(err)
        except interrupt.Interrupted as stop:  # while checking: before the study's folder
            error(f"interrupted by {signal.Signals(stop.signum).name} before the study started; "
                  "nothing written")  # fmt: skip
            return 128 + stop.signum


def _parse(argv: list[str]):  # noqa: ANN202
    import argparse

    parser = argparse.ArgumentParser(
        prog="lr-lab study", description=__doc__.split("\n")[0], exit_on_error=False
    )
    parser.add_argument("--config", help="study YAML, or a bundled name (default: study)")
    parser.add_argument("--out", help="folder for new study folders (default: studies)")
    parser.add_argument("--quick", action="store_true", help="the config's quick subset")
    parser.add_argument("--resume", help="finish a study folder")
    parser.add_argument("--workers", type=int, help="problems side by side (default: cores)")
    try:
        args, extra = parser.parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise UsageError(f"{err} (see lr-lab study --help)") from None
    if extra:
        raise UsageError(f"unexpected argument {extra[0]!r} (see lr-lab study --help)")
    other = [*(["--config", args.config] if args.config is not None else []),
             *(["--out", args.out] if args.out is not None else []),
             *(["--quick"] if args.quick else [])]  # fmt: skip
    if args.resume and other:  # as run.py --resume: silently ignored options would mislead
        raise UsageError(f"--resume {args.resume}: takes no other options (got {shlex.join(other)}"
                         "); the study keeps its config and folder (--workers may change)")  # fmt: skip
    return args


def _main(argv: list[str], console) -> int:  # noqa: ANN001
    from lr_lab.atomic import atomic_write
    from lr_lab.console import error
    from lr_lab.experiment.folder import check_out_dir, new_run_dir

    args = _parse(argv)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: expected a positive integer")
    if args.resume:
        root = Path(args.resume)
        if not (root / STUDY_FILE).is_file():
            raise UsageError(f"--resume {root}: not a study folder (no {STUDY_FILE})")
        # The study as it started, not its source file (which may have changed since).
        data = read_yaml_mapping(root / STUDY_FILE, "--resume").get("study")
        if not isinstance(data, dict):
            raise UsageError(f"--resume {root}: {STUDY_FILE} holds no study; start a new one")
        where = str(root / STUDY_FILE)
    else:
        path = resolve_config(args.config or "study")
        data, where = load_study(path, args.quick), str(path)
    cfg = parse_study(data, where)
    study = problems(cfg)
    out = Path(args.out or "studies")
    check_problems(study, out)
    interrupt.check()  # a Ctrl-C while checking stops here, before anything is written
    if not args.resume:
        if why := check_out_dir(out):
            raise UsageError(why)
        root = new_run_dir(out, "study-quick" if args.quick else "study")
        saved = {"source": str(path.resolve()), "quick": args.quick, "study": data}
        atomic_write(root / STUDY_FILE, yaml.safe_dump(saved, sort_keys=False))
    try:
        return _run(root, cfg, study, args.workers, console)
    except interrupt.Interrupted as stop:  # before the lock (importing torch) or after the runs
        error(f"interrupted by {signal.Signals(stop.signum).name}; finished runs are kept. "
              f"Finish with: lr-lab study --resume {shlex.quote(str(root))}")  # fmt: skip
        return 128 + stop.signum


def _run(root: Path, cfg: StudyConfig, study: list, workers: int | None, console) -> int:  # noqa: ANN001
    from lr_lab.console import error
    from lr_lab.experiment.folder import RunLock
    from lr_lab.training.trainer import quiet_lightning, usable_cores

    quiet_lightning()
    workers = workers or cfg.workers or usable_cores()
    console.line(f"lr-lab study: {root}: {len(study)} problems x {len(cfg.seeds)} seeds on "
                 f"{workers} workers")  # fmt: skip
    with RunLock(root):
        session = Session(root, workers)
        for repaired in (session.repaired, damaged_report(root)):
            if repaired:
                console.line(f"lr-lab study: {repaired}")
        try:
            failed = run_problems(study, root, workers, console.line,
                                  lambda: session.save("running"))  # fmt: skip
        except interrupt.Interrupted as stop:
            session.save("interrupted")
            error(f"interrupted by {signal.Signals(stop.signum).name}; finished runs are kept. "
                  f"Finish with: lr-lab study --resume {shlex.quote(str(root))}")  # fmt: skip
            return 128 + stop.signum
        if failed:
            session.save("failed")
            error(f"{len(failed)} problems failed ({', '.join(failed[:5])}); their run folders "
                  f"say why. Finish with: lr-lab study --resume {shlex.quote(str(root))}")  # fmt: skip
            return 1
        records = collect(root, study)
        if up_to_date(root, session.sessions):  # nothing trained since study.json was written
            console.line("The study was already complete: nothing to do, nothing rewritten.")
            files = [root / name for name in FILES]
        else:
            files = write_study(root, records, _meta(cfg, len(study), session.save("complete")))
    from lr_lab.study.report import ranking_table
    from lr_lab.study.stats import ranking

    console.line()
    console.line("\n".join(ranking_table(ranking(records, set(cfg.peers)))))
    console.line(f"\nStudy folder: {root}  ({', '.join(p.name for p in files)}, runs/)")
    return 0


def _meta(cfg: StudyConfig, n_problems: int, sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """What ran, on what, and when: the first session's date, every session's time summed."""
    import lightning
    import torch

    from lr_lab.version import __version__

    return {"date": sessions[0]["started"][:10], "lr_lab": __version__,
            "lightning": lightning.__version__, "torch": torch.__version__,
            "problems": n_problems, "seeds": cfg.seeds, "grid": grid_lrs(cfg.grid),
            "peers": list(cfg.peers),
            "wall_s": round(sum(s["wall_s"] for s in sessions), 1), "sessions": sessions}  # fmt: skip
