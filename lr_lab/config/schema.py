"""The experiment's configuration: typed dataclasses, the schema of every YAML key.

The type hints are the schema: :mod:`lr_lab.config.parse` converts every value by its hint with
jsonargparse (the parser behind LightningCLI), and :mod:`lr_lab.config.checks` checks what types
cannot say (ranges, cross-field rules). The field docstrings are the ``--help`` text.

``model`` and ``data`` are LightningCLI's subclass arguments: a ``class_path`` and its
``init_args``, typed by the class's ``__init__`` hints. The default classes are the built-in
regression MLP and its synthetic data; their arguments are described here too
(:class:`RegressionModelArgs`, :class:`RegressionDataArgs`), so that they are checked before
torch loads. This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RULE_NAMES = ("lightning", "steep_log", "valley", "minimum_div10")
CORRECTED = "@corrected"  # a rule read off the bias-corrected finder curve (finder.curve: both)
FINDER_RUN = "finder"  # a seed's finder: its TensorBoard run and its pending entry
Rule = Literal["lightning", "steep_log", "valley", "minimum_div10"]

BUILTIN_MODEL = "lr_lab.training.model.RegressionModule"
BUILTIN_DATA = "lr_lab.training.data.RegressionDataModule"


@dataclass
class RegressionModelArgs:
    """The built-in model's ``init_args``: an MLP trained with MSE by SGD or Adam."""

    hidden_dims: list[int] = field(default_factory=lambda: [32, 32])
    """Widths of the hidden layers (ReLU between layers); [] is plain linear regression."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """The optimizer: torch.optim.SGD or torch.optim.Adam."""
    momentum: float = 0.0
    """SGD momentum (0 = plain SGD)."""
    weight_decay: float = 0.0
    """L2 penalty added to the gradient."""
    input_dim: int | None = None
    """Input features (null: the built-in data's; set it to train on your own DataModule)."""


@dataclass
class RegressionDataArgs:
    """The built-in data's ``init_args``: synthetic ``y = f(x) + noise``, or a CSV file."""

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


# The arguments of each built-in class, checked (and --help'd) without importing it.
BUILTIN_ARGS: dict[str, type] = {
    BUILTIN_MODEL: RegressionModelArgs,
    BUILTIN_DATA: RegressionDataArgs,
}


@dataclass
class ClassConfig:
    """A LightningModule or LightningDataModule (or a function returning one) and its arguments."""

    class_path: str
    """A dotted path: mypkg.nets.Net, a function, or a classmethod (pkg.Net.from_dataset)."""
    init_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments, converted by the __init__ (or function) type hints."""


def _builtin(path: str) -> ClassConfig:
    return ClassConfig(path, asdict(BUILTIN_ARGS[path]()))


@dataclass
class TrialsConfig:
    """The fixed-learning-rate trials, and how they are run."""

    lrs: list[float] = field(default_factory=lambda: [0.01, 1.0, 0.0001])
    """Learning rates to train at, each from the same initial checkpoint."""
    max_epochs: int = 10
    """Epochs per trial."""
    max_steps: int | None = None
    """Stop each trial after this many optimizer steps as well (null: max_epochs alone)."""
    divergence_factor: float = 1000.0
    """A trial has diverged when its loss is non-finite or rises above its first loss by
    (factor - 1) times that loss's size: above factor x the first loss, for a positive loss."""
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
    """Ray, for trials.executor: ray (pip install -e '.[ray]')."""

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


Smoothing = Literal["last", "mean2", "mean3", "min", "ema"]
Baseline = Literal[
    "prodigy", "dadapt_adam", "dadapt_sgd", "schedulefree_adamw", "dog", "cocob", "optuna"
]


@dataclass
class SearchConfig:
    """The verified LR: the finder's answer raced (successive halving) and the winner trained.

    The defaults come from the design study in docs/search.md (README, "The search").
    """

    enabled: bool = True
    """Run the search whenever the finder runs (finder.enabled)."""
    below: float = 0.25
    """Decades of the bracket under the anchor (the trusted rules' geometric mean)."""
    above: float = 1.0
    """Decades of the bracket over it (the rules tend to suggest too small an LR)."""
    spacing: float = 0.25
    """Decades between candidates (a fixed log grid: 0.01, 0.0178, 0.0316, ...)."""
    first_epochs: int = 1
    """Epochs of the first rung (each later rung trains eta times as many)."""
    eta: int = 3
    """The best 1/eta of a rung go on to the next."""
    rungs: int = 2
    """Cuts of the race: the last one keeps one candidate, the winner."""
    smoothing: Smoothing = "ema"
    """A candidate's score over its rung: last epoch, mean of the last 2 or 3, min, or an EMA
    (weight 0.5 on the newest epoch)."""
    extend: float = 0.05
    """A first rung whose median score is within this fraction of its best (nothing has learned
    yet: parity, a transformer's first epochs) is undecided: its epochs double, no one is cut.
    0: never."""


@dataclass
class ExperimentConfig:
    """One learning-rate experiment."""

    seed: int = 0
    """Seed of the initial weights, the synthetic data and the data order."""
    seeds: list[int] | None = None
    """Repeat the whole experiment for each of these seeds (overrides seed)."""
    metric: str = "val_loss"
    """The validation metric trials are ranked by: the name your module logs with self.log in
    validation_step; the built-in module logs val_loss."""
    metric_mode: Literal["min", "max"] = "min"
    """Whether a lower (min: a loss) or a higher (max: an accuracy) metric is better."""
    model: ClassConfig = field(default_factory=lambda: _builtin(BUILTIN_MODEL))
    """Your LightningModule (class_path, init_args); the default is the built-in regression MLP."""
    data: ClassConfig = field(default_factory=lambda: _builtin(BUILTIN_DATA))
    """Your LightningDataModule (class_path, init_args); the default is the built-in data."""
    trials: TrialsConfig = field(default_factory=TrialsConfig)
    finder: FinderConfig = field(default_factory=FinderConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    baselines: list[Baseline] = field(default_factory=list)
    """Peers trained beside the search on the same footing (pip install -e '.[peers]'): the
    LR-free optimizers prodigy, dadapt_adam, dadapt_sgd, schedulefree_adamw, dog, cocob at their
    defaults, and optuna (TPE over log LR with successive halving, the search's step budget)."""
    trainer: dict[str, Any] = field(default_factory=lambda: {"accelerator": "auto"})
    """lightning.Trainer keyword arguments for every trial and the finder (accelerator,
    gradient_clip_val, precision, accumulate_grad_batches, deterministic, ...)."""
    ray: RayConfig = field(default_factory=RayConfig)

    @property
    def seed_list(self) -> list[int]:
        """The seeds the experiment runs, in order."""
        return list(self.seeds) if self.seeds else [self.seed]

    @property
    def builtin_model(self) -> bool:
        """Whether the model is the built-in regression MLP (not a user class)."""
        return self.model.class_path == BUILTIN_MODEL

    @property
    def builtin_data(self) -> bool:
        """Whether the data is the built-in synthetic/CSV data (not a user class)."""
        return self.data.class_path == BUILTIN_DATA


# What the lab sets on every trial's Trainer itself, and why (trainer: refuses them in one line).
OWNED_TRAINER_KEYS = {
    "max_epochs": "set trials.max_epochs",
    "max_steps": "set trials.max_steps",
    "min_epochs": "trials run exactly trials.max_epochs",
    "min_steps": "trials run exactly trials.max_epochs",
    "max_time": "a trial stopped by the clock would not be replayable",
    "logger": "the lab writes each trial's TensorBoard run itself",
    "callbacks": "the lab's callbacks observe every trial; put yours on your module",
    "enable_checkpointing": "every trial starts from init.ckpt; nothing else is restored",
    "default_root_dir": "the run folder holds everything",
    "num_sanity_val_steps": "a sanity check would shift a shuffled DataLoader's order",
    "devices": "each trial runs on one device; to use several, run trials side by side "
    "(trials.executor: processes, one worker per device)",
    "num_nodes": "each trial runs on one device (trials.executor: ray spreads them)",
    "strategy": "each trial runs on one device",
    "fast_dev_run": "it disables the loggers and the LR finder",
    "limit_train_batches": "every trial must see the same batches as the finder",
    "val_check_interval": "validation runs once per epoch, the metric trials are ranked by",
    "check_val_every_n_epoch": "validation runs once per epoch, the metric trials are ranked by",
    "enable_progress_bar": "the lab prints one line per trial",
    "enable_model_summary": "the lab prints one line per trial",
    "reload_dataloaders_every_n_epochs": "every trial must see the same batches in the same order",
}


SECTIONS: dict[str, type] = {
    "trials": TrialsConfig,
    "finder": FinderConfig,
    "search": SearchConfig,
    "ray": RayConfig,
}
CLASS_SECTIONS = ("model", "data")
