"""The checks on config values that type hints cannot express: ranges and cross-field rules.

Pure and light (no torch, no Lightning), so that bad input is reported in well under a second.
:func:`check_config` returns *every* problem at once, each as one line naming the key, the value
and what is allowed. What needs a user's classes imported lives in :mod:`lr_lab.providers`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from lr_lab.config import (
    RULE_NAMES,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
)

# Lightning's suggestion() drops the first 10 and the last point and needs 2 left; the lab's rules
# scale their skip with the sweep (rules.py) and need fewer.
MIN_FINDER_STEPS = 13
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeds are 32-bit
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# Bytes a float32 parameter costs while training: weight, gradient, init copy, slack.
BYTES_PER_PARAM = 4 * 4
OPTIMIZER_STATE = {"sgd": 0, "sgd+momentum": 1, "adam": 2}


def _finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


# A learning rate reaches float32 parameters: above this torch refuses it mid-step ("cannot be
# converted to type float without overflow"), below it the LR is 0 and the trial never moves.
LR_RANGE = (1.1754944e-38, 3.4028235e38)  # float32's normal numbers
LR_RANGE_TEXT = "learning rates must be finite and in float32's range 1.2e-38..3.4e38"


def _lr_ok(value: Any) -> bool:
    return _finite_positive(value) and LR_RANGE[0] <= value <= LR_RANGE[1]


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def mlp_parameters(input_dim: int, hidden_dims: list[int]) -> int:
    """Number of parameters of the built-in MLP (Linear layers with biases, one output)."""
    widths = [input_dim, *hidden_dims, 1]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def _non_default(section: Any, defaults: Any, skip: tuple[str, ...]) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(section)
        if f.name not in skip and getattr(section, f.name) != getattr(defaults, f.name)
    ]


def _check_classes(cfg: ExperimentConfig, bad: Any) -> None:
    """User classes: the built-in keys do not apply to them, and they need each other."""
    skip = ("class_path", "init_args")
    if cfg.model.init_args and not cfg.model.class_path:
        bad("model.init_args", cfg.model.init_args, "needs model.class_path (your LightningModule)")
    if cfg.data.init_args and not cfg.data.class_path:
        bad("data.init_args", cfg.data.init_args, "needs data.class_path (your DataModule)")
    if not cfg.builtin_model:
        for name in _non_default(cfg.model, ModelConfig(), skip):
            bad(f"model.{name}", getattr(cfg.model, name), "applies to the built-in model only; "
                "give your module's arguments in model.init_args")  # fmt: skip
        for name in _non_default(cfg.optimizer, OptimizerConfig(), ()):
            bad(f"optimizer.{name}", getattr(cfg.optimizer, name), "applies to the built-in "
                "model only; your module's configure_optimizers chooses its optimizer")  # fmt: skip
        if cfg.trials.batched:
            bad("trials.batched", True, "the stacked fast path trains the built-in model only; "
                "use false or null with model.class_path")  # fmt: skip
    elif not cfg.builtin_data:
        bad("model.class_path", None, "the built-in model needs the built-in data (its input "
            "size); name your LightningModule in model.class_path too")  # fmt: skip
    elif cfg.metric != "val_loss":
        bad("metric", cfg.metric, "the built-in model logs val_loss; other names need your own "
            "module (model.class_path)")  # fmt: skip
    if not cfg.builtin_data:
        for name in _non_default(cfg.data, DataConfig(), skip):
            bad(f"data.{name}", getattr(cfg.data, name), "applies to the built-in data only; "
                "give your DataModule's arguments in data.init_args")  # fmt: skip
    if not cfg.metric.strip():
        bad("metric", cfg.metric, "name the metric your validation_step logs, e.g. val_loss")


def _check_data(cfg: ExperimentConfig, n_rows: int | None, bad: Any) -> None:
    d = cfg.data
    n = n_rows if d.csv_path else d.n_samples
    if d.csv_path is None:
        if d.n_samples < 2:
            bad("data.n_samples", d.n_samples, "must be an integer >= 2")
        if d.input_dim < 1:
            bad("data.input_dim", d.input_dim, "must be a positive integer")
    if not (math.isfinite(d.noise_std) and d.noise_std >= 0):
        bad("data.noise_std", d.noise_std, "must be a finite number >= 0")
    if not (0 <= d.val_fraction < 1):
        bad("data.val_fraction", d.val_fraction, "must be in [0, 1)")
    if d.batch_size < 1:
        bad("data.batch_size", d.batch_size, "must be a positive integer")
    elif d.csv_path and n is not None and n < 2:
        bad("data.csv_path", d.csv_path, f"needs at least 2 data rows, has {n}")
    elif n is not None and n >= 2 and 0 <= d.val_fraction < 1:
        n_train = n - int(round(n * d.val_fraction))
        if n_train < 1:
            bad("data.val_fraction", d.val_fraction, f"leaves no training samples out of {n}")
        elif d.batch_size > n_train:
            bad("data.batch_size", d.batch_size, f"must not exceed the {n_train} training samples")
        if d.val_fraction > 0 and int(round(n * d.val_fraction)) == 0:
            bad("data.val_fraction", d.val_fraction, f"holds out no sample of {n}; use 0 or more")


def _check_memory(cfg: ExperimentConfig, n_inputs: int | None, bad: Any) -> None:
    """A model or data set this machine cannot hold is named now, not after a crash."""
    free = available_memory()
    if free is None or n_inputs is None or n_inputs < 1:
        return
    d = cfg.data
    if d.csv_path is None and d.n_samples >= 2:
        # x and y as float32, their train/val split copies, and gathered batches.
        need = 3 * 4 * d.n_samples * (d.input_dim + 1)
        if need > free:
            bad("data.n_samples", d.n_samples, f"with data.input_dim = {d.input_dim} needs about "
                f"{_gib(need)} of memory for the data; {_gib(free)} is available")  # fmt: skip
    if any(w < 1 for w in cfg.model.hidden_dims):
        return
    params = mlp_parameters(n_inputs, cfg.model.hidden_dims)
    o = cfg.optimizer
    state = OPTIMIZER_STATE["adam" if o.name == "adam" else "sgd+momentum" if o.momentum else "sgd"]
    copies = len(cfg.trials.lrs) if cfg.trials.batched else 1
    need = params * (BYTES_PER_PARAM + 4 * state) * copies
    if need > free:
        bad("model.hidden_dims", cfg.model.hidden_dims, f"{params:,} parameters need about "
            f"{_gib(need)} to train; {_gib(free)} is available")  # fmt: skip


def check_config(cfg: ExperimentConfig, csv_shape: tuple[int, int] | None = None) -> list[str]:
    """Check the values that type hints cannot.

    Args:
        cfg: The parsed configuration.
        csv_shape: (rows, columns) of the CSV file when ``data.csv_path`` is set (the caller
            reads it), else ``None``.

    Returns:
        One line per problem, each naming the key, the value and what is allowed; empty if valid.
    """
    problems: list[str] = []

    def bad(key: str, value: object, allowed: str) -> None:
        problems.append(f"{key} = {value!r}: {allowed}")

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
        _check_data(cfg, n_rows, bad)
    if cfg.builtin_model:
        for i, width in enumerate(cfg.model.hidden_dims):
            if width < 1:
                bad(f"model.hidden_dims[{i}]", width, "layer widths must be positive integers")
        o = cfg.optimizer
        if not (0 <= o.momentum < 1):
            bad("optimizer.momentum", o.momentum, "must be in [0, 1)")
        if o.name != "sgd" and o.momentum != 0:
            bad("optimizer.momentum", o.momentum, f"only applies to sgd, not {o.name}")
        if not (math.isfinite(o.weight_decay) and o.weight_decay >= 0):
            bad("optimizer.weight_decay", o.weight_decay, "must be a finite number >= 0")
        if cfg.builtin_data:
            _check_memory(cfg, n_inputs if cfg.data.csv_path else cfg.data.input_dim, bad)

    _check_trials(cfg, bad)
    _check_finder(cfg, bad)
    _check_trainer(cfg, bad)
    return problems


def _check_trials(cfg: ExperimentConfig, bad: Any) -> None:
    t = cfg.trials
    if not t.lrs:
        bad("trials.lrs", t.lrs, "give at least one learning rate")
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
    if t.batched and t.executor in ("processes", "ray"):
        bad("trials.batched", True, f"stacks a seed's trials in one process; with "
            f"trials.executor: {t.executor} use false or null")  # fmt: skip
    if t.threads is not None and t.threads < 1:
        bad("trials.threads", t.threads, "must be a positive integer, or null for automatic")
    if t.workers is not None and t.workers < 1:
        bad("trials.workers", t.workers, "must be a positive integer, or null for automatic")
    r = cfg.ray
    for key, value in (
        ("ray.cpus_per_trial", r.cpus_per_trial),
        ("ray.gpus_per_trial", r.gpus_per_trial),
    ):
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


def _check_trainer(cfg: ExperimentConfig, bad: Any) -> None:
    accelerator = cfg.trainer.accelerator
    if accelerator not in ACCELERATORS:
        bad("trainer.accelerator", accelerator, f"expected one of {list(ACCELERATORS)}")
    devices = cfg.trainer.devices
    if devices not in (1, "1"):
        bad("trainer.devices", devices, "each trial runs on one device; to use several, run "
            "trials side by side with trials.executor: processes (one worker per device)")  # fmt: skip
