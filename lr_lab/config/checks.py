"""The checks on config values that type hints cannot express: ranges and cross-field rules.

Pure and light (no torch, no Lightning), so that bad input is reported in well under a second.
:func:`check_config` returns *every* problem at once, each as one line naming the key, the value
and what is allowed. What needs a user's classes imported lives in :mod:`lr_lab.training.classes`.
"""

from __future__ import annotations

import math
from typing import Any

from lr_lab.config.baselines import OPTUNA, missing
from lr_lab.config.hints import as_given, shown
from lr_lab.config.memory import check_memory
from lr_lab.config.schema import (
    OWNED_TRAINER_KEYS,
    RULE_NAMES,
    ExperimentConfig,
    RegressionDataArgs,
    RegressionModelArgs,
)

MODEL, DATA = "model.init_args.", "data.init_args."

# Lightning's suggestion() drops the first 10 and the last point and needs 2 left; the lab's rules
# scale their skip with the sweep (rules.py) and need fewer.
MIN_FINDER_STEPS = 13
# A range test is 100 to 1000 steps; 10**8 asked for by mistake would run for hours.
MAX_FINDER_STEPS = 10_000
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeds are 32-bit
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


# A learning rate reaches float32 parameters: above this torch refuses it mid-step ("cannot be
# converted to type float without overflow"), below it the LR is 0 and the trial never moves.
LR_RANGE = (1.1754944e-38, 3.4028235e38)  # float32's normal numbers
LR_RANGE_TEXT = "learning rates must be finite and in float32's range 1.2e-38..3.4e38"


def _lr_ok(value: Any) -> bool:
    return _finite_positive(value) and LR_RANGE[0] <= value <= LR_RANGE[1]


def _check_classes(cfg: ExperimentConfig, bad: Any) -> None:
    """The built-in model needs the built-in data for its input size, or input_dim."""
    if cfg.builtin_model and not cfg.builtin_data and cfg.model.init_args.get("input_dim") is None:
        bad("model.init_args.input_dim", None, "the built-in model takes its input size from "
            "the built-in data; with your DataModule give it here, or name your "
            "LightningModule in model.class_path")  # fmt: skip
    if cfg.trials.batched and not (cfg.builtin_model and cfg.builtin_data):
        bad("trials.batched", True, "the stacked fast path trains the built-in model on the "
            "built-in data only; use false or null")  # fmt: skip
    if not cfg.metric.strip():
        bad("metric", cfg.metric, "name the metric your validation_step logs, e.g. val_loss")
    elif cfg.builtin_model and cfg.metric != "val_loss":
        bad("metric", cfg.metric, "the built-in model logs val_loss; other names need your own "
            "module (model.class_path)")  # fmt: skip
    elif cfg.builtin_model and cfg.metric_mode != "min":
        bad("metric_mode", cfg.metric_mode, "the built-in model's val_loss is a loss: min")


def _check_data(d: RegressionDataArgs, n_rows: int | None, bad: Any) -> None:
    n = n_rows if d.csv_path else d.n_samples
    if d.csv_path is None:
        if d.n_samples < 2:
            bad(f"{DATA}n_samples", d.n_samples, "must be an integer >= 2")
        if d.input_dim < 1:
            bad(f"{DATA}input_dim", d.input_dim, "must be a positive integer")
    if not (math.isfinite(d.noise_std) and d.noise_std >= 0):
        bad(f"{DATA}noise_std", d.noise_std, "must be a finite number >= 0")
    if not (0 <= d.val_fraction < 1):
        bad(f"{DATA}val_fraction", d.val_fraction, "must be in [0, 1)")
    if d.batch_size < 1:
        bad(f"{DATA}batch_size", d.batch_size, "must be a positive integer")
    elif d.csv_path and n is not None and n < 2:
        bad(f"{DATA}csv_path", d.csv_path, f"needs at least 2 data rows, has {n}")
    elif n is not None and n >= 2 and 0 <= d.val_fraction < 1:
        n_train = n - int(round(n * d.val_fraction))
        if n_train < 1:
            bad(f"{DATA}val_fraction", d.val_fraction, f"leaves no training samples out of {n}")
        elif d.batch_size > n_train:
            bad(f"{DATA}batch_size", d.batch_size,
                f"must not exceed the {n_train} training samples")  # fmt: skip
        if d.val_fraction > 0 and int(round(n * d.val_fraction)) == 0:
            bad(f"{DATA}val_fraction", d.val_fraction, f"holds out no sample of {n}; use 0 or more")


def check_config(cfg: ExperimentConfig, csv_shape: tuple[int, int] | None = None) -> list[str]:
    """Check the values that type hints cannot.

    Args:
        cfg: The parsed configuration.
        csv_shape: (rows, columns) of the CSV file when ``data.csv_path`` is set (the caller
            reads it), else ``None``.

    Returns:
        One line per problem, each naming the key, the value and what is allowed; empty if valid.
    """
    problems, bad = _collector()
    if cfg.seeds is not None:
        if not cfg.seeds:
            bad("seeds", cfg.seeds, "give at least one seed, or null to use seed")
        elif len(set(cfg.seeds)) != len(cfg.seeds):
            bad("seeds", cfg.seeds, "seeds must be distinct")
    for key, value in (
        ("seed", cfg.seed),
        *((f"seeds[{i}]", s) for i, s in enumerate(cfg.seeds or [])),
    ):
        if not 0 <= value <= MAX_SEED:
            bad(key, value, f"must be in [0, {MAX_SEED}] (seeds are 32-bit)")

    _check_classes(cfg, bad)
    n_rows, n_inputs = (csv_shape[0], csv_shape[1] - 1) if csv_shape else (None, None)
    if cfg.builtin_data:
        d = RegressionDataArgs(**cfg.data.init_args)
        _check_data(d, n_rows, bad)
        n_inputs = n_inputs if d.csv_path else d.input_dim
    m = None
    if cfg.builtin_model:
        m = RegressionModelArgs(**cfg.model.init_args)
        for i, width in enumerate(m.hidden_dims):
            if width < 1:
                bad(f"{MODEL}hidden_dims[{i}]", width, "layer widths must be positive integers")
        if not (0 <= m.momentum < 1):
            bad(f"{MODEL}momentum", m.momentum, "must be in [0, 1)")
        if m.optimizer != "sgd" and m.momentum != 0:
            bad(f"{MODEL}momentum", m.momentum, f"only applies to sgd, not {m.optimizer}")
        if not (math.isfinite(m.weight_decay) and m.weight_decay >= 0):
            bad(f"{MODEL}weight_decay", m.weight_decay, "must be a finite number >= 0")
        if m.input_dim is not None:
            if m.input_dim < 1:
                bad(f"{MODEL}input_dim", m.input_dim, "must be a positive integer, or null")
            n_inputs = m.input_dim
    check_memory(cfg, m, n_inputs if cfg.builtin_data or m else None, bad)

    _check_trials(cfg, bad)
    _check_finder(cfg, bad)
    _check_search(cfg, bad)
    _check_baselines(cfg, bad, problems)
    _check_trainer(cfg, bad)
    return problems


def _check_trials(cfg: ExperimentConfig, bad: Any) -> None:
    t = cfg.trials
    searching = cfg.finder.enabled and cfg.search.enabled
    if not t.lrs and not searching:
        bad("trials.lrs", t.lrs, "give at least one learning rate, or let the search find one "
            "(finder.enabled and search.enabled)")  # fmt: skip
    for i, lr in enumerate(t.lrs):
        if not _lr_ok(lr):
            bad(f"trials.lrs[{i}]", lr, LR_RANGE_TEXT)
    finite = [lr for lr in t.lrs if _lr_ok(lr)]
    dupes = sorted({lr for lr in finite if finite.count(lr) > 1})
    if dupes:
        bad("trials.lrs", t.lrs, f"duplicate learning rates {dupes}")
    by_name: dict[str, set[float]] = {}
    for lr in finite:
        by_name.setdefault(f"{lr:.3g}", set()).add(lr)
    for name, same in by_name.items():
        if len(same) > 1:
            bad("trials.lrs", sorted(same), f"these read the same at 3 significant digits "
                f"(lr={name}); make them differ there")  # fmt: skip
    if t.max_epochs < 1:
        bad("trials.max_epochs", t.max_epochs, "must be a positive integer")
    if t.max_steps is not None and t.max_steps < 1:
        bad("trials.max_steps", t.max_steps, "must be a positive integer, or null")
    if not (math.isfinite(t.divergence_factor) and t.divergence_factor > 1):
        bad("trials.divergence_factor", t.divergence_factor, "must be a finite number > 1")
    _check_execution(cfg, bad)


def check_execution(cfg: ExperimentConfig) -> list[str]:
    """Check how trials run: the options ``--resume`` may change (the rest was checked at start)."""
    problems, bad = _collector()
    _check_execution(cfg, bad)
    return problems


def _collector() -> tuple[list[str], Any]:
    problems: list[str] = []  # and bad(key, value, allowed), which adds one line to it

    def bad(key: str, value: object, allowed: str) -> None:
        problems.append(f"{key} = {shown(repr(value))}: {allowed}")

    return problems, bad


def _check_execution(cfg: ExperimentConfig, bad: Any) -> None:
    t = cfg.trials
    if t.batched and t.executor in ("processes", "ray"):
        bad("trials.batched", True, f"stacks a seed's trials in one process; with "
            f"trials.executor: {t.executor} use false or null")  # fmt: skip
    if t.threads is not None and t.threads < 1:
        bad("trials.threads", t.threads, "must be a positive integer, or null for automatic")
    if t.workers is not None and t.workers < 1:
        bad("trials.workers", t.workers, "must be a positive integer, or null for automatic")
    r = cfg.ray
    for key, value in (("ray.cpus_per_trial", r.cpus_per_trial),
                       ("ray.gpus_per_trial", r.gpus_per_trial)):  # fmt: skip
        if not (math.isfinite(value) and value >= 0):
            bad(key, value, "must be a finite number >= 0")
    if r.cpus_per_trial == 0 and r.gpus_per_trial == 0:
        bad("ray.cpus_per_trial", r.cpus_per_trial, "a trial needs a CPU or a GPU")


def _check_finder(cfg: ExperimentConfig, bad: Any) -> None:
    f = cfg.finder
    if not f.enabled:
        return
    for key, value in (("finder.min_lr", f.min_lr), ("finder.max_lr", f.max_lr)):
        if not _lr_ok(value):
            bad(key, value, LR_RANGE_TEXT)
    if _lr_ok(f.min_lr) and _lr_ok(f.max_lr) and f.min_lr >= f.max_lr:
        bad("finder.min_lr", f.min_lr, f"must be below finder.max_lr = {f.max_lr!r}")
    if f.num_training > MAX_FINDER_STEPS:
        bad("finder.num_training", f.num_training, f"must be <= {MAX_FINDER_STEPS:,} (a range "
            "test is 100 to 1000 steps; each step is a training step)")  # fmt: skip
    if f.num_training < MIN_FINDER_STEPS:
        bad("finder.num_training", f.num_training, f"must be >= {MIN_FINDER_STEPS}: Lightning's "
            "suggestion drops the first 10 and the last point and needs 2 left")  # fmt: skip
    if f.early_stop_threshold is not None and not (
        math.isfinite(f.early_stop_threshold) and f.early_stop_threshold > 1
    ):
        bad("finder.early_stop_threshold", f.early_stop_threshold, "must be > 1, or null")
    if not f.rules:
        bad("finder.rules", f.rules, f"name at least one of {list(RULE_NAMES)}")
    elif len(set(f.rules)) != len(f.rules):
        bad("finder.rules", f.rules, "rules must be distinct")


def _check_search(cfg: ExperimentConfig, bad: Any) -> None:
    s = cfg.search
    for key, value in (("below", s.below), ("above", s.above)):
        if not (math.isfinite(value) and 0 <= value <= 4):
            bad(f"search.{key}", value, "decades: a number in [0, 4]")
    if not (math.isfinite(s.spacing) and 0.05 <= s.spacing <= 1):
        bad("search.spacing", s.spacing, "decades between candidates: a number in [0.05, 1]")
    elif math.isfinite(s.below + s.above) and (s.below + s.above) / s.spacing > 40:
        bad("search.spacing", s.spacing, "makes more than 40 candidates; widen it")
    if s.first_epochs < 1:
        bad("search.first_epochs", s.first_epochs, "must be a positive integer")
    if s.eta < 2:
        bad("search.eta", s.eta, "must be >= 2 (the best 1/eta go on)")
    if s.rungs < 1:
        bad("search.rungs", s.rungs, "must be a positive integer")


def _check_baselines(cfg: ExperimentConfig, bad: Any, problems: list[str]) -> None:
    names = cfg.baselines
    if len(set(names)) != len(names):
        bad("baselines", names, "each peer once")
    if OPTUNA in names and not (cfg.finder.enabled and cfg.search.enabled):
        bad("baselines", names, "optuna gets the search's budget: it needs finder.enabled and "
            "search.enabled")  # fmt: skip
    problems += missing(names)


def _check_trainer(cfg: ExperimentConfig, bad: Any) -> None:
    for key, given in cfg.trainer.items():
        value = as_given(given)  # command-line text read as YAML, for the message
        if key in OWNED_TRAINER_KEYS:
            if key == "devices" and str(value) == "1":
                continue  # what the lab sets anyway
            bad(f"trainer.{key}", value, f"the lab sets it: {OWNED_TRAINER_KEYS[key]}")
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ACCELERATORS:
        bad("trainer.accelerator", accelerator, f"expected one of {list(ACCELERATORS)}")


def check_request(cfg: ExperimentConfig, init: str | None = None) -> list[str]:
    """Every problem found without torch or Lightning: values, the CSV file, memory, ``--init``.

    A CSV path is made absolute here, so that ``config.yaml`` (and ``--resume``) work from any
    folder.
    """
    from pathlib import Path

    from lr_lab.config.csv_file import DataError, read_csv

    problems = []
    csv_shape = None
    csv_path = cfg.data.init_args.get("csv_path") if cfg.builtin_data else None
    if csv_path:
        cfg.data.init_args["csv_path"] = str(Path(csv_path).resolve())
        try:
            csv_shape = read_csv(cfg.data.init_args["csv_path"]).shape
        except DataError as err:
            problems.append(str(err))
    problems += check_config(cfg, csv_shape)
    if init is not None and not Path(init).is_file():
        problems.append(f"--init {init}: initial checkpoint not found")
    return problems
