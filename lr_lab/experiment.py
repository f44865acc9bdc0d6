"""One experiment: per seed, save ``init.ckpt``, run the trials and the finder, rank everything.

Per seed: the initial checkpoint, the fixed trials, the finder, one trial per distinct
suggestion; then the comparison. ``results.json`` is rewritten after every trial.

This is the only layer that knows the order of things; the executors (``trials``, ``finder``)
only ever see one spec at a time and return plain records.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

import lr_lab
from lr_lab import interrupt
from lr_lab.batched import run_batched, should_batch
from lr_lab.comparison import compare
from lr_lab.config import ExperimentConfig
from lr_lab.data import DataError, file_sha256, input_dim
from lr_lab.finder import FINDER_RUN, run_finder
from lr_lab.initial_state import (
    InitStateError,
    check_fits,
    read_initial_state,
    save_initial_state,
    weights_sha256,
)
from lr_lab.results import FinderResult, RunResults, TrialResult, write_results
from lr_lab.rules import apply_rules
from lr_lab.trials import TrialSpec, build_module, run_trial, trial_name

INIT_FILE = "init.ckpt"
Progress = Callable[[str], None]


def seed_dir(run_dir: Path, seed: int) -> Path:
    """The folder of one seed: its ``init.ckpt`` and one TensorBoard run per trial."""
    return run_dir / f"seed{seed}"


def prepare_initial_state(
    cfg: ExperimentConfig, seed: int, folder: Path, source: Path | None, recorded: str | None
) -> str:
    """Make sure ``folder/init.ckpt`` exists and fits the model; return its weights' sha256.

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
    n_inputs = input_dim(cfg.data)
    if path.exists() or source is not None:
        src = path if path.exists() else source
        module = build_module(cfg, n_inputs, lr=1.0)
        state = read_initial_state(src)["state_dict"]
        check_fits(src, state, module)
        sha = weights_sha256(state)
        if recorded and sha != recorded:
            raise InitStateError(
                f"{src}: weights changed since the run recorded them (sha256 {sha[:12]} != {recorded[:12]})"
            )
        if not path.exists():
            shutil.copyfile(src, path)
        return sha
    # Determinism in one place: the seed draws the initial weights; data has its own generators.
    L.seed_everything(seed, verbose=False)
    module = build_module(cfg, n_inputs, lr=1.0)
    architecture = {"input_dim": n_inputs, "hidden_dims": list(cfg.model.hidden_dims)}
    return save_initial_state(module, path, architecture, seed)


def fixed_specs(cfg: ExperimentConfig, seed: int, run_dir: Path) -> list[TrialSpec]:
    """The grid trials of one seed."""
    folder = seed_dir(run_dir, seed)
    return [
        TrialSpec(trial_name(lr), lr, seed, "fixed", str(folder / INIT_FILE), str(folder), cfg)
        for lr in cfg.trials.lrs
    ]


def check_specs(
    cfg: ExperimentConfig, finder: FinderResult, run_dir: Path, taken: list[float]
) -> list[TrialSpec]:
    """One ``finder_check`` trial per distinct suggestion not already trained at that LR."""
    folder = seed_dir(run_dir, finder.seed)
    by_lr: dict[float, list[str]] = {}
    for rule, lr in finder.rules.items():
        if lr is not None and not any(math.isclose(lr, t) for t in taken):
            by_lr.setdefault(lr, []).append(rule)
    return [
        TrialSpec(
            trial_name(lr, tuple(rules)),
            lr,
            finder.seed,
            "finder_check",
            str(folder / INIT_FILE),
            str(folder),
            cfg,
            tuple(rules),
        )
        for lr, rules in by_lr.items()
    ]


def new_results(cfg: ExperimentConfig, init_source: Path | None = None) -> RunResults:
    """An empty record for a run about to start."""
    return RunResults(
        lr_lab_version=lr_lab.__version__,
        lightning_version=L.__version__,
        torch_version=torch.__version__,
        seeds=cfg.seed_list,
        init_source=str(init_source) if init_source else "",
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
    """Run (or finish) the experiment in ``run_dir``.

    Args:
        cfg: The validated config.
        run_dir: The run folder (exists; ``results.json`` is written here).
        init_path: A user checkpoint every seed starts from (``--init``), else fresh weights.
        results: An interrupted run's records (``--resume``): finished trials are kept.
        progress: Called with one line per finished step of the experiment.

    Returns:
        The complete records, also written to ``run_dir/results.json``.
    """
    start = time.perf_counter()
    results = results or new_results(cfg)
    results.status = "running"
    done = {(t.seed, t.name) for t in results.trials}
    results.pending = [
        f"seed{s.seed}/{s.name}"
        for seed in cfg.seed_list
        for s in fixed_specs(cfg, seed, run_dir)
        if (s.seed, s.name) not in done
    ]
    if cfg.finder.enabled:
        finder_done = {f.seed for f in results.finders}
        results.pending += [
            f"seed{seed}/finder" for seed in cfg.seed_list if seed not in finder_done
        ]
    write_results(run_dir, results)

    n_inputs = input_dim(cfg.data)
    if cfg.data.csv_path:
        sha = file_sha256(cfg.data.csv_path)
        if results.csv_sha256 and sha != results.csv_sha256:
            raise DataError(
                f"data.csv_path = {cfg.data.csv_path!r}: the file changed since the run started "
                f"(sha256 {sha[:12]} != {results.csv_sha256[:12]})"
            )
        results.csv_sha256 = sha

    def record(result: TrialResult, index: int, total: int, note: str = "") -> None:
        results.trials.append(result)
        results.pending.remove(f"seed{result.seed}/{result.name}")
        write_results(run_dir, results)
        outcome = (
            f"diverged at step {result.diverged_step}"
            if result.diverged
            else f"final loss {result.final_loss:.4g}"
        )
        progress(
            f"  [{index}/{total}] {result.name:<34} {outcome:<26} {result.wall_s:5.2f} s{note}"
        )

    def run(planned: list[TrialSpec]) -> None:
        specs = [s for s in planned if (s.seed, s.name) not in done]
        for spec in specs:
            # A folder left by this trial's interrupted attempt holds a partial curve: start clean.
            shutil.rmtree(Path(spec.log_dir) / spec.name, ignore_errors=True)
        # Decided on all the planned trials, so a resumed run trains the rest the same way.
        if specs and should_batch(cfg, len(planned), n_inputs):
            interrupt.check()
            for i, result in enumerate(run_batched(specs), 1):
                record(result, i, len(specs), f" (batched, {result.step_us:.0f} us/trial-step)")
            return
        for i, spec in enumerate(specs, 1):
            interrupt.check()
            record(run_trial(spec), i, len(specs))

    for seed in cfg.seed_list:
        folder = seed_dir(run_dir, seed)
        sha = prepare_initial_state(
            cfg, seed, folder, init_path, results.init_sha256.get(str(seed))
        )
        results.init_sha256[str(seed)] = sha
        progress(f"seed {seed}: init.ckpt sha256 {sha[:12]}")
        run(fixed_specs(cfg, seed, run_dir))
        if not cfg.finder.enabled:
            continue
        finder = next((f for f in results.finders if f.seed == seed), None)
        if finder is None:
            # A finder run cut short by an interrupt may have logged its curve: start clean.
            shutil.rmtree(folder / FINDER_RUN, ignore_errors=True)
            finder = run_finder(cfg, seed, folder / INIT_FILE, folder)
            for rule, s in apply_rules(
                cfg.finder.rules, finder.lr, finder.loss, finder.suggestion, finder.suggestion_note
            ).items():
                finder.rules[rule] = s.lr
                if s.note:
                    finder.rule_notes[rule] = s.note
            results.finders.append(finder)
            results.pending.remove(f"seed{seed}/finder")
            interrupt.check()  # a stop during the search waits for it: the curve is whole
            progress(f"  finder: {describe_finder(finder)}")
        if not cfg.finder.verify:
            continue
        taken = [t.lr for t in results.trials if t.seed == seed and t.role == "fixed"]
        checks = check_specs(cfg, finder, run_dir, taken)
        results.pending += [f"seed{seed}/{s.name}" for s in checks if (seed, s.name) not in done]
        write_results(run_dir, results)
        run(checks)

    results.comparison = compare(results, list(cfg.finder.rules) if cfg.finder.enabled else [])
    results.metric = results.comparison["metric"]
    results.status = "complete"
    results.wall_s += time.perf_counter() - start
    write_results(run_dir, results)
    return results
