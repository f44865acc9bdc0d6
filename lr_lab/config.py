"""The experiment's configuration: typed dataclasses (the schema) and the checks on their values.

The type hints are the schema that jsonargparse validates YAML files and command-line overrides
against (see ``cli.py``); :func:`check_config` then checks what types cannot say (ranges, cross-field
rules) and returns *every* problem at once, each as one line naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

RULE_NAMES = ("lightning", "steep_log", "valley", "minimum_div10")
Rule = Literal["lightning", "steep_log", "valley", "minimum_div10"]


@dataclass
class DataConfig:
    """Synthetic regression data ``y = f(x) + noise``, or the user's own CSV file."""

    function: Literal["linear", "sine", "quadratic"] = "linear"
    """f(x): linear is y = 2*sum(x) + 1, sine is y = sin(pi*mean(x)), quadratic is y = mean(x**2)."""
    n_samples: int = 512
    """Number of synthetic samples (ignored with csv_path)."""
    noise_std: float = 0.1
    """Standard deviation of the Gaussian noise added to y."""
    input_dim: int = 1
    """Number of input features (with csv_path: taken from the file)."""
    val_fraction: float = 0.2
    """Share of samples held out for validation; 0 means no validation."""
    batch_size: int = 32
    """Mini-batch size."""
    csv_path: str | None = None
    """CSV with a header row; the last column is the target, the others are features."""


@dataclass
class ModelConfig:
    """The regression MLP."""

    hidden_dims: list[int] = field(default_factory=lambda: [32, 32])
    """Widths of the hidden layers (ReLU between layers); [] is plain linear regression."""


@dataclass
class OptimizerConfig:
    """The optimizer every trial and the finder use; only the learning rate differs."""

    name: Literal["sgd", "adam"] = "sgd"
    """The optimizer: torch.optim.SGD or torch.optim.Adam."""
    momentum: float = 0.0
    """SGD momentum (0 = plain SGD)."""
    weight_decay: float = 0.0
    """L2 penalty added to the gradient."""


@dataclass
class TrialsConfig:
    """The fixed-learning-rate trials."""

    lrs: list[float] = field(default_factory=lambda: [0.01, 0.5, 0.0001])
    """Learning rates to train at, each from the same initial checkpoint."""
    max_epochs: int = 10
    """Epochs per trial."""
    divergence_factor: float = 1000.0
    """A trial has diverged when its loss is non-finite or above this factor times its first loss."""
    batched: bool | None = None
    """Train a seed's trials at once in one stacked module; null = automatic (4+ trials)."""


@dataclass
class FinderConfig:
    """Lightning's LR range test (``Tuner.lr_find``)."""

    enabled: bool = True
    """Run the finder (and verify its suggestions)."""
    min_lr: float = 1e-6
    """Smallest learning rate the finder tries."""
    max_lr: float = 1.0
    """Largest learning rate the finder tries."""
    num_training: int = 100
    """Number of steps (learning rates) the finder tries."""
    mode: Literal["exponential", "linear"] = "exponential"
    """How the finder's learning rate grows from min_lr to max_lr."""
    early_stop_threshold: float | None = 4.0
    """Stop when the smoothed loss exceeds this times the best loss; null = never stop early."""
    rules: list[Rule] = field(default_factory=lambda: list(RULE_NAMES))
    """Suggestion rules to read off the finder's curve, each verified by a real trial."""
    verify: bool = True
    """Train each distinct suggestion as a finder_check trial."""


@dataclass
class TrainerConfig:
    """Passed through to ``lightning.Trainer``."""

    accelerator: str = "auto"
    """"cpu", "gpu", "auto", ... as lightning.Trainer takes it."""
    devices: int | str = 1
    """Devices per trial, as lightning.Trainer takes it."""


@dataclass
class ExperimentConfig:
    """One learning-rate experiment."""

    seed: int = 0
    """Seed of the initial weights, the synthetic data and the data order."""
    seeds: list[int] | None = None
    """Repeat the whole experiment for each of these seeds (overrides seed)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trials: TrialsConfig = field(default_factory=TrialsConfig)
    finder: FinderConfig = field(default_factory=FinderConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def seed_list(self) -> list[int]:
        """The seeds the experiment runs, in order."""
        return list(self.seeds) if self.seeds else [self.seed]


# Lightning's suggestion() and the lab's rules skip the first 10 and the last point; the rules
# need 3 points left.
MIN_FINDER_STEPS = 14


def _finite_positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_config(cfg: ExperimentConfig, n_rows: int | None = None) -> list[str]:
    """Check the values that type hints cannot.

    Args:
        cfg: The parsed configuration.
        n_rows: Number of samples in the CSV file when ``data.csv_path`` is set (the CSV is read
            by the caller), else ``None`` to use ``data.n_samples``.

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
        if value < 0:
            bad(key, value, "must be >= 0")

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

    t = cfg.trials
    if not t.lrs:
        bad("trials.lrs", t.lrs, "give at least one learning rate")
    for i, lr in enumerate(t.lrs):
        if not _finite_positive(lr):
            bad(f"trials.lrs[{i}]", lr, "learning rates must be finite and > 0")
    dupes = sorted({lr for lr in t.lrs if t.lrs.count(lr) > 1})
    if dupes:
        bad("trials.lrs", t.lrs, f"duplicate learning rates {dupes}")
    by_name: dict[str, set[float]] = {}
    for lr in t.lrs:
        by_name.setdefault(f"{lr:.3g}", set()).add(lr)
    for name, same in by_name.items():
        if len(same) > 1:
            bad(
                "trials.lrs",
                sorted(same),
                f"these name the same trial (lr={name}); make them differ within 3 significant digits",
            )
    if t.max_epochs < 1:
        bad("trials.max_epochs", t.max_epochs, "must be a positive integer")
    if not (math.isfinite(t.divergence_factor) and t.divergence_factor > 1):
        bad("trials.divergence_factor", t.divergence_factor, "must be a finite number > 1")

    f = cfg.finder
    if f.enabled:
        for key, value in (("finder.min_lr", f.min_lr), ("finder.max_lr", f.max_lr)):
            if not _finite_positive(value):
                bad(key, value, "must be finite and > 0")
        if _finite_positive(f.min_lr) and _finite_positive(f.max_lr) and f.min_lr >= f.max_lr:
            bad("finder.min_lr", f.min_lr, f"must be below finder.max_lr = {f.max_lr!r}")
        if f.num_training < MIN_FINDER_STEPS:
            bad(
                "finder.num_training",
                f.num_training,
                f"must be >= {MIN_FINDER_STEPS}: the first 10 and the last point are dropped "
                "and the rules need 3 left",
            )
        if f.early_stop_threshold is not None and not (
            math.isfinite(f.early_stop_threshold) and f.early_stop_threshold > 1
        ):
            bad("finder.early_stop_threshold", f.early_stop_threshold, "must be > 1, or null")
        if not f.rules:
            bad("finder.rules", f.rules, f"name at least one of {list(RULE_NAMES)}")
        elif len(set(f.rules)) != len(f.rules):
            bad("finder.rules", f.rules, "rules must be distinct")
    return problems
