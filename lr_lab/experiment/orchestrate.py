"""One experiment: per seed, ``init.ckpt``, the trials, the finder, its checks; then the ranks.

This is the only layer that knows the order of things; the executors and the finder only ever
see specs and return plain records. ``results.json`` is rewritten after every trial; the report
and the ``complete`` status come after (:mod:`lr_lab.experiment.session`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lr_lab import interrupt
from lr_lab.analysis.comparison import compare
from lr_lab.analysis.records import INIT_FILE, BaselineResult, TrialResult, seed_dir
from lr_lab.analysis.results import RunResults, write_results
from lr_lab.config.csv_file import file_sha256
from lr_lab.config.schema import FINDER_RUN, ExperimentConfig
from lr_lab.errors import DataError, TrialError
from lr_lab.executors import execute, plan, run_threads, trial_session
from lr_lab.experiment.initial_state import prepare_initial_state
from lr_lab.experiment.peers import OPTUNA, baseline_records, baseline_trials, optuna_of_seed
from lr_lab.experiment.plan import (
    check_plan,
    check_trials,
    fixed_trials,
    plan_pending,
    rule_names,
    searching,
)
from lr_lab.experiment.search import next_trials
from lr_lab.experiment.trials import Planned, specs
from lr_lab.finder.lr_find import clean_scratch, read_rules, run_finder
from lr_lab.report.progress import (
    describe_finder,
    describe_optuna,
    describe_search,
    epochs,
    trial_line,
)
from lr_lab.training.initial_state import read_initial_state
from lr_lab.training.problem import FitSettings, Problem
from lr_lab.training.runner import EpochReport, run_trial

Progress = Callable[[str], None]


def run_experiment(
    cfg: ExperimentConfig,
    problem: Problem,
    fit: FitSettings,
    run_dir: Path,
    *,
    results: RunResults,
    init_path: Path | None = None,
    progress: Progress = lambda message: None,
) -> RunResults:
    """Run (or finish) the trials, finders and checks of the experiment in ``run_dir``.

    Args:
        cfg: The validated config (what to run: seeds, grid, finder, executor).
        problem: The module and data (from the config, or the objects given).
        fit: How every trial trains.
        run_dir: The run folder (exists; ``results.json`` is written here).
        init_path: A user checkpoint every seed starts from (``--init``), else fresh weights.
        results: The run's records (a resumed run's: finished work is kept).
        progress: Called with one line per finished step of the experiment.

    Returns:
        The records with every trial done and the comparison made (status still ``running``:
        the report comes next).
    """
    start = time.perf_counter()
    check_plan(cfg, results)
    results.status, results.error = "running", ""
    results.pending = plan_pending(cfg, results)
    write_results(run_dir, results)
    csv_path = problem.builtin_data.csv_path if problem.builtin_data else None
    if csv_path:
        sha = file_sha256(csv_path)
        if results.csv_sha256 and sha != results.csv_sha256:
            raise DataError(
                f"data.init_args.csv_path = {csv_path!r}: the file changed since the run started "
                f"(sha256 {sha[:12]} != {results.csv_sha256[:12]})"
            )
        results.csv_sha256 = sha

    def run(planned: list[Planned]) -> None:
        done = {t.key for t in results.trials}
        todo = specs([p for p in planned if p.key not in done], problem, fit, run_dir, threads)
        for spec in todo:
            # A folder left by this trial's interrupted attempt holds a partial curve: start clean.
            shutil.rmtree(spec.run_dir, ignore_errors=True)
        if not todo:
            return
        how = plan(todo, len(planned), cfg.trials)
        count = [0]

        def record(result: TrialResult) -> None:
            count[0] += 1
            results.trials.append(result)
            results.pending.remove(result.key)
            write_results(run_dir, results)
            progress(trial_line(result, count[0], len(todo), how.label, cfg.metric))

        execute(todo, how, record, ray, progress)

    def train_observed(planned: Planned, report: Callable[[int, float], bool]) -> TrialResult:
        """One trial here, its epochs reported as they end (Optuna's pruning needs its study)."""
        results.pending = plan_pending(cfg, results, also=[planned.key])
        write_results(run_dir, results)
        (spec,) = specs([planned], problem, fit, run_dir, threads)
        shutil.rmtree(spec.run_dir, ignore_errors=True)
        interrupt.check()
        observer = EpochReport(report)
        try:
            result = run_trial(spec, [observer])
        except (Exception, SystemExit) as err:
            raise TrialError(spec.key, err) from err
        if observer.stopped:  # pruned: a partial curve, like a race trial's
            result.stop_epochs = observer.seen
            result.note = f"pruned by Optuna after {epochs(observer.seen)}"
        elif result.diverged:
            result.note = "diverged"
        elif planned.epochs:  # the last trial Optuna's budget paid for
            result.note = f"cut at the end of the budget, after {epochs(planned.epochs)}"
        results.trials.append(result)
        results.pending = plan_pending(cfg, results)
        write_results(run_dir, results)
        n = sum(t.role == OPTUNA and t.seed == planned.seed for t in results.trials)
        progress(trial_line(result, n, None, OPTUNA, cfg.metric))
        return result

    # Records from before results.threads existed say it per trial and finder.
    threads = results.threads or next(
        (r.threads for r in [*results.trials, *results.finders]), None
    )
    # One Ray for the whole run (executor ray): its workers serve every step of every seed.
    with trial_session(cfg.trials, cfg.ray) as ray:
        for seed in cfg.seed_list:
            folder = seed_dir(run_dir, seed)
            sha = prepare_initial_state(
                problem, seed, folder, init_path, results.init_sha256.get(str(seed))
            )
            results.init_sha256[str(seed)] = sha
            progress(f"seed {seed}: init.ckpt sha256 {sha[:12]}")
            clean_scratch(folder)  # a finder killed mid-search leaves its scratch folder
            if threads is None:  # once per run, from the model's size (trainer.plan_threads)
                state = read_initial_state(folder / INIT_FILE)["state_dict"]
                threads = run_threads(cfg.trials, cfg.ray, sum(t.numel() for t in state.values()))
            results.threads = threads
            run(fixed_trials(cfg, seed))
            run(baseline_trials(cfg, seed))
            peers = baseline_records(cfg, seed, results.trials)
            results.baselines = [b for b in results.baselines if b.seed != seed or b.name == OPTUNA]
            results.baselines += peers
            if not cfg.finder.enabled:
                continue
            finder = next((f for f in results.finders if f.seed == seed), None)
            if finder is None:
                interrupt.check()
                try:
                    finder = run_finder(
                        problem, fit, cfg.finder, seed, folder / INIT_FILE, folder, threads
                    )
                except (Exception, SystemExit) as err:
                    raise TrialError(f"seed{seed}/{FINDER_RUN}", err) from err
                read_rules(cfg.finder, finder)
                results.finders.append(finder)
                results.pending = plan_pending(cfg, results)
                write_results(run_dir, results)
                progress(f"  finder: {describe_finder(finder)}")
            if cfg.finder.verify:
                run(check_trials(cfg, finder, results))
            if searching(cfg):
                while True:
                    seed_trials = [t for t in results.trials if t.seed == seed]
                    step, record = next_trials(cfg, finder, seed_trials, cfg.metric_mode)
                    if not step:
                        break
                    results.pending = plan_pending(cfg, results)  # this rung's trials, named
                    write_results(run_dir, results)
                    run(step)
                results.searches = [r for r in results.searches if r.seed != seed] + [record]
                write_results(run_dir, results)
                progress(f"  search: {describe_search(record)}")
            if OPTUNA in cfg.baselines:  # replayed from the records, then continued
                optuna, _ = optuna_of_seed(cfg, results, finder, train_observed)
                if optuna is None:  # its budget is the search's, winner included
                    optuna = BaselineResult(seed, OPTUNA, trials=0, note="the search found no LR "
                                            "(no budget to match)")  # fmt: skip
                results.baselines = [b for b in results.baselines
                                     if (b.seed, b.name) != (seed, OPTUNA)] + [optuna]  # fmt: skip
                results.pending = plan_pending(cfg, results)
                write_results(run_dir, results)
                progress(f"  optuna: {describe_optuna(optuna)}")

    results.comparison = compare(results, rule_names(cfg))
    results.wall_s += time.perf_counter() - start
    return results
