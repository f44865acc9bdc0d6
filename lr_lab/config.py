"""The experiment's configuration: typed dataclasses, the schema of every YAML key.

The type hints are the schema that jsonargparse validates YAML files and command-line overrides
against (see ``arguments.py``); :func:`lr_lab.checks.check_config` then checks what types cannot
say (ranges, cross-field rules). The field docstrings are the ``--help`` text. This module imports
nothing heavy: bad input is reported before torch or Lightning load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RULE_NAMES = ("lightning", "steep_log", "valley", "minimum_div10")
CORRECTED = "@corrected"  # a rule read off the bias-corrected finder curve (finder.curve: both)
FINDER_RUN = "finder"  # a seed's finder: its TensorBoard run and its pending entry
Rule = Literal["lightning", "steep_log", "valley", "minimum_div10"]


@dataclass
class DataConfig:
    """The data: the built-in synthetic ``y = f(x) + noise`` or CSV data, or your DataModule."""

    class_path: str | None = None
    """Your LightningDataModule, e.g. mypkg.data.MyData (null: the built-in data, keys below)."""
    init_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for class_path, e.g. {batch_size: 64}."""
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
    """The model: the built-in regression MLP, or your LightningModule."""

    class_path: str | None = None
    """Your LightningModule, e.g. mypkg.nets.Net (null: the built-in MLP, keys below)."""
    init_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for class_path, e.g. {hidden: 64}."""
    hidden_dims: list[int] = field(default_factory=lambda: [32, 32])
    """Widths of the hidden layers (ReLU between layers); [] is plain linear regression."""


@dataclass
class OptimizerConfig:
    """The built-in model's optimizer; only the learning rate differs between trials."""

    name: Literal["sgd", "adam"] = "sgd"
    """The optimizer: torch.optim.SGD or torch.optim.Adam."""
    momentum: float = 0.0
    """SGD momentum (0 = plain SGD)."""
    weight_decay: float = 0.0
    """L2 penalty added to the gradient."""


@dataclass
class TrialsConfig:
    """The fixed-learning-rate trials, and how they are run."""

    lrs: list[float] = field(default_factory=lambda: [0.01, 0.5, 0.0001])
    """Learning rates to train at, each from the same initial checkpoint."""
    max_epochs: int = 10
    """Epochs per trial."""
    max_steps: int | None = None
    """Stop each trial after this many optimizer steps as well (null: max_epochs alone)."""
    divergence_factor: float = 1000.0
    """A trial has diverged when its loss is non-finite or above this factor times its first loss."""
    batched: bool | None = None
    """Train a seed's trials at once in one stacked module (built-in model); null = automatic."""
    executor: Literal["auto", "inline", "processes", "ray"] = "auto"
    """Where trials run: inline (this process), processes (a local worker pool), ray, or auto."""
    workers: int | None = None
    """Worker processes for executor processes (null: usable cores, or one per visible GPU)."""
    threads: int | None = None
    """Torch intra-op threads per trial (null: 1 for small models, else the cores per worker).
    CPU results are bit for bit the same at the same thread count."""


@dataclass
class RayConfig:
    """Ray Tune, for trials.executor: ray (pip install -e '.[ray]')."""

    address: str | None = None
    """null: start a local Ray; 'auto': the running cluster; or a cluster address."""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial."""
    gpus_per_trial: float = 0.0
    """GPUs Ray reserves for each trial."""


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
    curve: Literal["lightning", "corrected", "both"] = "lightning"
    """The curve the lab's rules read: Lightning's smoothed loss, the bias-corrected one, or both
    (each rule then also runs on the corrected curve as rule@corrected)."""
    verify: bool = True
    """Train each distinct suggestion as a finder_check trial."""


@dataclass
class TrainerConfig:
    """Passed through to ``lightning.Trainer`` for every trial and the finder."""

    accelerator: str = "auto"
    """"cpu", "gpu", "cuda", "mps", "auto" as lightning.Trainer takes it."""
    devices: int | str = 1
    """Devices per trial: 1 (many devices are the executor's job, see trials.workers)."""


@dataclass
class ExperimentConfig:
    """One learning-rate experiment."""

    seed: int = 0
    """Seed of the initial weights, the synthetic data and the data order."""
    seeds: list[int] | None = None
    """Repeat the whole experiment for each of these seeds (overrides seed)."""
    metric: str = "val_loss"
    """The validation metric trials are ranked by (lower is better): the name your module logs
    with self.log in validation_step; the built-in module logs val_loss."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trials: TrialsConfig = field(default_factory=TrialsConfig)
    finder: FinderConfig = field(default_factory=FinderConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    @property
    def seed_list(self) -> list[int]:
        """The seeds the experiment runs, in order."""
        return list(self.seeds) if self.seeds else [self.seed]

    @property
    def builtin_model(self) -> bool:
        """Whether the model is the built-in regression MLP (not a user class)."""
        return not self.model.class_path

    @property
    def builtin_data(self) -> bool:
        """Whether the data is the built-in synthetic/CSV data (not a user class)."""
        return not self.data.class_path
