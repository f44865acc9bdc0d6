"""What a trial needs, and nothing more: the problem, the fit settings, the trial itself.

- :class:`Problem`: how to make the module at a learning rate and the data of a seed, from a
  class path, a class or factory, or an object (deep-copied for each use); picklable, so a trial
  runs the same inline, in a worker process or on a Ray node.
- :class:`FitSettings`: epochs, steps, divergence, the metric and its direction, and the
  ``lightning.Trainer`` arguments every trial and the finder use.
- :class:`TrialSpec`: one trial (LR, seed, role, paths, threads), carrying the two above.

:func:`problem_of` and :func:`fit_settings` are the one place that reads an
:class:`~lr_lab.config.schema.ExperimentConfig` for the layers below.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lr_lab.config.class_path import import_object
from lr_lab.config.schema import (
    BUILTIN_MODEL,
    ExperimentConfig,
    RegressionDataArgs,
    RegressionModelArgs,
)
from lr_lab.errors import ProviderError

LR_ATTRIBUTES = ("lr", "learning_rate")


@dataclass(frozen=True)
class Source:
    """How to make a module or a DataModule: ``path`` and ``init_args``, or an object.

    Attributes:
        key: ``"model"`` or ``"data"`` (for messages).
        path: The dotted path of the class or factory (of an object: its class's), recorded.
        init_args: Keyword arguments (plain data) for the class or factory.
        target: What the user passed from Python instead of a path: a class or factory (called
            with ``init_args``), or an instance (deep-copied for each use, never trained itself).
    """

    key: str
    path: str
    init_args: dict[str, Any] = field(default_factory=dict)
    target: Any = None

    @property
    def is_instance(self) -> bool:
        """Whether the source is an object to copy rather than something to call."""
        t = self.target
        return t is not None and not (inspect.isclass(t) or inspect.isroutine(t))

    def factory(self) -> Any:
        """The class or function that makes the object (imported from ``path`` if need be)."""
        return (
            self.target
            if self.target is not None
            else import_object(self.path, f"{self.key}.class_path")
        )

    def make(self, **extra: Any) -> Any:
        """A fresh object: a deep copy of the instance, or the factory called with its arguments."""
        if self.is_instance:
            return copy.deepcopy(self.target)
        return self.factory()(**self.init_args, **extra)


@dataclass(frozen=True)
class Problem:
    """The module and data of an experiment, made afresh for every trial and the finder.

    Attributes:
        model: The LightningModule's source.
        data: The LightningDataModule's source.
        builtin_model: The built-in MLP's arguments (its input size resolved), when it is the
            model: the fast sequential and stacked paths train it without Lightning's per-step
            machinery (``lr_lab.training.chunked``, ``lr_lab.training.batched``).
        builtin_data: The built-in data's arguments, when it is the data.
    """

    model: Source
    data: Source
    builtin_model: RegressionModelArgs | None = None
    builtin_data: RegressionDataArgs | None = None

    def objects(self) -> dict[str, str]:
        """What came from Python rather than from a class path: ``{"model": "instance"}``."""
        return {
            s.key: "instance"
            if s.is_instance
            else "class"
            if inspect.isclass(s.target)
            else "function"
            for s in (self.model, self.data)
            if s.target is not None
        }

    @property
    def builtin(self) -> bool:
        """Whether both are the built-in ones (the fast paths apply)."""
        return self.builtin_model is not None and self.builtin_data is not None

    def make_model(self, lr: float) -> Any:
        """The LightningModule at learning rate ``lr`` (weights not yet loaded).

        The LR is set where ``configure_optimizers`` reads it, as Lightning's finder does.
        """
        module = self.model.make()
        set_lr(module, lr)
        return module

    def make_data(self, seed: int, steps_per_call: int | None = None) -> Any:
        """The DataModule for one seed (a user's follows the global RNG the caller seeded)."""
        if self.builtin_data is not None and not self.data.is_instance:
            return self.data.make(seed=seed, steps_per_call=steps_per_call)
        return self.data.make()

    def architecture(self) -> dict[str, Any]:
        """What ``init.ckpt``'s weights are shaped for (recorded beside them)."""
        if self.builtin_model is not None:
            return {
                "class_path": BUILTIN_MODEL,
                "hidden_dims": list(self.builtin_model.hidden_dims),
            }
        return {"class_path": self.model.path, "init_args": self.model.init_args}


@dataclass(frozen=True)
class FitSettings:
    """How every trial of a run trains (its LR and budget aside).

    Attributes:
        max_epochs: Epochs per trial.
        max_steps: Optimizer steps per trial as well (None: epochs alone).
        divergence_factor: See ``trials.divergence_factor``.
        metric: The validation metric trials are ranked by.
        metric_mode: ``"min"`` or ``"max"``: which way is better.
        trainer: ``lightning.Trainer`` keyword arguments (accelerator, gradient clipping, ...).
    """

    max_epochs: int = 10
    max_steps: int | None = None
    divergence_factor: float = 1000.0
    metric: str = "val_loss"
    metric_mode: str = "min"
    trainer: dict[str, Any] = field(default_factory=lambda: {"accelerator": "auto"})

    @property
    def plain_trainer(self) -> bool:
        """Whether the Trainer takes nothing but an accelerator.

        The built-in model's fast paths (manual optimization, several steps per call) then
        train exactly what Lightning's own loop would.
        """
        return set(self.trainer) <= {"accelerator"}


@dataclass(frozen=True)
class TrialSpec:
    """A picklable description of one trial.

    Attributes:
        name: The trial's TensorBoard run name, unique within its seed.
        lr: The learning rate.
        seed: The seed of the data, the data order and the initial checkpoint.
        role: ``"fixed"`` (from the grid) or ``"finder_check"`` (verifying a suggestion).
        init_path: The seed's ``init.ckpt``.
        log_dir: The seed's folder; the trial's TensorBoard run is ``log_dir/name``.
        problem: The module and data.
        fit: How it trains.
        rules: The finder rules that suggested this LR (finder checks only).
        threads: Torch intra-op threads to train on (the run's, see ``trainer.plan_threads``).
        stop_epochs: Stop after this many epochs, the schedule kept the full budget's (a race
            trial: the first epochs of the full trial at its LR); None: the full budget.
        rung: A race trial's rung.
        optimizer: A baseline's LR-free optimizer (``prodigy``, ...) in place of the module's.
    """

    name: str
    lr: float
    seed: int
    role: str
    init_path: str
    log_dir: str
    problem: Problem
    fit: FitSettings
    rules: tuple[str, ...] = ()
    threads: int = 1
    stop_epochs: int | None = None
    rung: int | None = None
    optimizer: str | None = None

    @property
    def key(self) -> str:
        """``seed0/020_lr=0.01``: the trial's id within the run (and its folder)."""
        return f"seed{self.seed}/{self.name}"

    @property
    def run_dir(self) -> Path:
        """The trial's TensorBoard run folder."""
        return Path(self.log_dir) / self.name


@dataclass
class Experiment:
    """What a run does: the checked config, and the problem and fit settings it describes."""

    cfg: ExperimentConfig
    problem: Problem
    fit: FitSettings
    init: Path | None = None  # an init.ckpt every seed starts from (--init)


def lr_attribute(module: Any) -> str | None:
    """The name Lightning's finder would use for the learning rate, or None if there is none."""
    from lightning.pytorch.utilities.parsing import lightning_hasattr

    return next((a for a in LR_ATTRIBUTES if lightning_hasattr(module, a)), None)


def set_lr(module: Any, lr: float) -> None:
    """Set the learning rate where ``configure_optimizers`` reads it (as Lightning's finder does)."""
    from lightning.pytorch.utilities.parsing import lightning_setattr

    attribute = lr_attribute(module)
    if attribute is None:
        raise ProviderError(f"{type(module).__qualname__}: no learning-rate attribute")
    lightning_setattr(module, attribute, lr)


def csv_input_dim(path: str) -> int:
    """Number of input features of a CSV file (its header's columns but the target)."""
    with Path(path).open(encoding="utf-8-sig") as fh:
        return len(fh.readline().split(",")) - 1


def problem_of(cfg: ExperimentConfig, model: Any = None, data: Any = None) -> Problem:
    """The problem ``cfg`` describes; ``model``/``data``: objects given from Python instead.

    ``cfg.model.init_args`` (and ``data``'s) must already be typed (see
    :mod:`lr_lab.training.classes`).
    """
    data_args = (
        RegressionDataArgs(**cfg.data.init_args) if cfg.builtin_data and data is None else None
    )
    model_args = None
    if cfg.builtin_model and model is None:
        model_args = RegressionModelArgs(**cfg.model.init_args)
        if model_args.input_dim is None and data_args is not None:
            dim = csv_input_dim(data_args.csv_path) if data_args.csv_path else data_args.input_dim
            model_args = RegressionModelArgs(**{**cfg.model.init_args, "input_dim": dim})
    model_init = asdict(model_args) if model_args else dict(cfg.model.init_args)
    return Problem(
        model=Source("model", cfg.model.class_path, model_init, model),
        data=Source("data", cfg.data.class_path, dict(cfg.data.init_args), data),
        builtin_model=model_args,
        builtin_data=data_args,
    )


def fit_settings(cfg: ExperimentConfig, trainer: dict[str, Any] | None = None) -> FitSettings:
    """The fit settings ``cfg`` describes (``trainer``: its Trainer arguments, typed)."""
    t = cfg.trials
    return FitSettings(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        divergence_factor=t.divergence_factor,
        metric=cfg.metric,
        metric_mode=cfg.metric_mode,
        trainer=dict(cfg.trainer if trainer is None else trainer),
    )
