"""One experiment: per seed, ``init.ckpt``, the trials, the finder, its checks; then the ranks.

This is the only layer that knows the order of things; the executors and the finder only ever
see specs and return plain records. ``results.json`` is rewritten after every trial; the report
and the ``complete`` status come after (:mod:`lr_lab.launch`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch

import lr_lab
from lr_lab import interrupt
from lr_lab.comparison import compare
from lr_lab.config import FINDER_RUN, ExperimentConfig
from lr_lab.data import file_sha256
from lr_lab.errors import DataError, InitStateError, TrialError
from lr_lab.executors import execute, plan, run_threads
from lr_lab.finder import clean_scratch, read_rules, run_finder
from lr_lab.initial_state import (
    check_fits,
    read_initial_state,
    save_initial_state,
    weights_sha256,
)
from lr_lab.plan import (
    INIT_FILE,
    check_plan,
    check_specs,
    fixed_specs,
    plan_pending,
    rule_names,
    seed_dir,
)
from lr_lab.providers import build_model
from lr_lab.results import FinderResult, RunResults, TrialResult, write_results
from lr_lab.rundir import atomic_write
from lr_lab.spec import TrialSpec

Progress = Callable[[str], None]


def _architecture(cfg: ExperimentConfig) -> dict:
    if cfg.builtin_model:
        return {
            "class_path": "lr_lab.model.RegressionModule",
            "hidden_dims": list(cfg.model.hidden_dims),
        }
    return {"class_path": cfg.model.class_path, "init_args": cfg.model.init_args}


def prepare_initial_state(
    cfg: ExperimentConfig, seed: int, folder: Path, source: Path | None, recorded: str | None
) -> str:
    """Make sure ``folder/init.ckpt`` exists and fits the model; return its weights' sha256.

    Fresh weights come from ``L.seed_everything(seed)`` and one construction of the module. A
    missing or unreadable ``init.ckpt`` of a resumed run is made again and must hash to the value
    the run recorded.

    Args:
        cfg: The experiment config (the architecture the checkpoint must fit).
        seed: Seeds fresh weights when there is no checkpoint yet.
        folder: The seed's folder.
        source: A user checkpoint to start from (``--init``), copied in unchanged.
        recorded: The hash recorded by an earlier, interrupted run (``--resume``).

    Returns:
        The sha256 of the initial weights.

    Raises:
        InitStateError: The checkpoint is unusable, or differs from the one recorded.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INIT_FILE
    module = build_model(cfg, lr=1.0)
    if path.exists():
        try:
            state = read_initial_state(path)["state_dict"]
        except InitStateError:
            if not recorded:
                raise
            path.unlink()  # damaged: made again below and checked against the recorded hash
        else:
            check_fits(path, state, module)
            return _checked(path, weights_sha256(state), recorded)
    if source is not None:
        state = read_initial_state(source)["state_dict"]
        check_fits(source, state, module)
        sha = _checked(source, weights_sha256(state), recorded)
        atomic_write(path, source.read_bytes(), exclusive=True)
        return sha
    # Determinism in one place: the seed draws the initial weights.
    L.seed_everything(seed, verbose=False)
    module = build_model(cfg, lr=1.0)
    if recorded:  # re-made for a resumed run: prove it is the same before writing it
        _checked(path, weights_sha256(module.state_dict()), recorded)
    return save_initial_state(module, path, _architecture(cfg), seed)


def _checked(path: Path, sha: str, recorded: str | None) -> str:
    if recorded and sha != recorded:
        raise InitStateError(
            f"{path}: weights changed since the run recorded them (sha256 {sha[:12]} != {recorded[:12]})"
        )
    return sha


def new_results(cfg: ExperimentConfig, init_source: Path | None = None) -> RunResults:
    """An empty record for a run about to start."""
    return RunResults(
        lr_lab_version=lr_lab.__version__,
        lightning_version=L.__version__,
        torch_version=torch.__version__,
        config=asdict(cfg),
        seeds=cfg.seed_list,
        init_source=str(init_source) if init_source else "",
        metric=cfg.metric,
    )


def describe_finder(finder: FinderResult) -> str:
    """One line: steps, time, each rule's LR, and any flags about the curve."""
    rules = ", ".join(
        f"{rule} {lr:.3g}" if lr else f"{rule} -" for rule, lr in finder.rules.items()
    )
    return "; ".join([f"{len(finder.lr)} steps in {finder.wall_s:.2f} s, {rules}", *finder.flags()])


def run_experiment(
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    init_path: Path | None = None,
    results: RunResults | None = None,
    progress: Progress = lambda message: None,
) -> RunResults:
    """Run (or finish) the trials, finders and checks of the experiment in ``run_dir``.

    Args:
        cfg: The validated config.
        run_dir: The run folder (exists; ``results.json`` is written here).
        init_path: A user checkpoint every seed starts from (``--init``), else fresh weights.
        results: An interrupted run's records (``--resume``): finished work is kept.
        progress: Called with one line per finished step of the experiment.

    Returns:
        The records with every trial done and the comparison made (status still ``running``:
        the report comes next).
    """
    start = time.perf_counter()
    results = results or new_results(cfg, init_path)
    check_plan(cfg, results, run_dir)
    results.status, results.error = "running", ""
    results.pending = plan_pending(cfg, results, run_dir)
    write_results(run_dir, results)
    if cfg.data.csv_path:
        sha = file_sha256(cfg.data.csv_path)
        if results.csv_sha256 and sha != results.csv_sha256:
            raise DataError(
                f"data.csv_path = {cfg.data.csv_path!r}: the file changed since the run started "
                f"(sha256 {sha[:12]} != {results.csv_sha256[:12]})"
            )
        results.csv_sha256 = sha

    def run(planned: list[TrialSpec]) -> None:
        done = {t.key for t in results.trials}
        specs = [s for s in planned if s.key not in done]
        for spec in specs:
            # A folder left by this trial's interrupted attempt holds a partial curve: start clean.
            shutil.rmtree(Path(spec.log_dir) / spec.name, ignore_errors=True)
        if not specs:
            return
        how = plan(specs, len(planned))
        count = [0]

        def record(result: TrialResult) -> None:
            count[0] += 1
            results.trials.append(result)
            results.pending.remove(result.key)
            write_results(run_dir, results)
            progress(_trial_line(result, count[0], len(specs), how.label))

        execute(specs, how, record)

    # Records from before results.threads existed say it per trial and finder.
    threads = results.threads or next(
        (r.threads for r in [*results.trials, *results.finders]), None
    )
    for seed in cfg.seed_list:
        folder = seed_dir(run_dir, seed)
        sha = prepare_initial_state(
            cfg, seed, folder, init_path, results.init_sha256.get(str(seed))
        )
        results.init_sha256[str(seed)] = sha
        progress(f"seed {seed}: init.ckpt sha256 {sha[:12]}")
        clean_scratch(folder)  # a finder killed mid-search leaves its scratch folder
        if threads is None:  # once per run, from the model's size (trainer.plan_threads)
            threads = run_threads(
                cfg,
                sum(
                    t.numel() for t in read_initial_state(folder / INIT_FILE)["state_dict"].values()
                ),
            )
        results.threads = threads
        run(fixed_specs(cfg, seed, run_dir, threads))
        if not cfg.finder.enabled:
            continue
        finder = next((f for f in results.finders if f.seed == seed), None)
        if finder is None:
            interrupt.check()
            try:
                finder = run_finder(cfg, seed, folder / INIT_FILE, folder, threads)
            except Exception as err:
                raise TrialError(f"seed{seed}/{FINDER_RUN}", err) from err
            read_rules(cfg, finder)
            results.finders.append(finder)
            results.pending = plan_pending(cfg, results, run_dir)
            write_results(run_dir, results)
            progress(f"  finder: {describe_finder(finder)}")
        if cfg.finder.verify:
            run(check_specs(cfg, finder, run_dir, results, threads))

    results.comparison = compare(results, rule_names(cfg))
    results.wall_s += time.perf_counter() - start
    return results


def _trial_line(result: TrialResult, index: int, total: int, how: str) -> str:
    width = len(str(total))
    if result.diverged:
        outcome = f"diverged at step {result.diverged_step}"
    elif result.final_loss is None:
        outcome = "no epoch"
    else:
        outcome = f"final loss {result.final_loss:.4g}"
    note = {"batched": f" (batched, {result.step_us:.0f} us/trial-step)", "processes": " (worker)",
            "ray": " (ray)"}.get(how, "")  # fmt: skip
    return (
        f"  [{index:>{width}}/{total}] {result.name:<34} {outcome:<26} {result.wall_s:5.2f} s{note}"
    )
