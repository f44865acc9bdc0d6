"""Model and data providers: the built-in MLP and synthetic/CSV data, or the user's classes.

A user's classes are named LightningCLI-style (``class_path`` + ``init_args``) and must honour
the contract Lightning's own LR finder relies on: the learning rate is an attribute ``lr`` or
``learning_rate`` (on the module or in ``hparams``) that ``configure_optimizers`` reads;
``training_step`` returns the loss; ``validation_step`` logs ``cfg.metric``. What can be checked
before a run folder exists (import, ``init_args``, the hooks the base classes leave undefined,
automatic optimization, the LR attribute, parameters that exist after ``__init__``) is checked by
:func:`check_user_classes` (the ``init_args`` types by :mod:`lr_lab.init_args`); the rest stops
the run at the step that reveals it (:class:`~lr_lab.errors.ContractError`, raised by the
recorder).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

import lightning as L
from lightning.pytorch.utilities.parsing import lightning_hasattr, lightning_setattr

from lr_lab.config import ExperimentConfig
from lr_lab.data import RegressionDataModule, input_dim
from lr_lab.errors import ProviderError
from lr_lab.model import RegressionModule

LR_ATTRIBUTES = ("lr", "learning_rate")
# What Lightning's base classes only warn or fail about: a class must define these itself.
MODULE_HOOKS = ("training_step", "configure_optimizers")
DATA_HOOKS = ("train_dataloader",)


def import_class(path: str, key: str, base: type) -> type:
    """Import ``package.module.Class`` and check it subclasses ``base``."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ProviderError(f"{key} = {path!r}: expected a dotted path like mypkg.nets.Net")
    if os.getcwd() not in sys.path:
        # The current folder, as `python -m` has it (an installed lr-lab script lacks it).
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except SystemExit as err:  # a script's sys.exit() at import (a Ctrl-C stays an interrupt)
        code = "" if err.code is None else repr(err.code)
        raise ProviderError(
            f"{key} = {path!r}: importing {module_name}: it called sys.exit({code})"
        ) from None
    except Exception as err:  # ImportError, or anything the user's module raises on import
        raise ProviderError(
            f"{key} = {path!r}: cannot import {module_name} ({type(err).__name__}: "
            f"{_first_line(err)}); is it in the current folder or on PYTHONPATH?"
        ) from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ProviderError(f"{key} = {path!r}: {module_name} has no {name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ProviderError(f"{key} = {path!r}: not a {base.__name__} subclass")
    return cls


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def _check_init_args(cls: type, init_args: dict[str, Any], key: str) -> None:
    """Unknown or missing constructor arguments, named before anything is built."""
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [
        n
        for n, p in params.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    unknown = [k for k in init_args if k not in named]
    if unknown and not takes_any:
        raise ProviderError(
            f"{key}.init_args: {cls.__qualname__} has no argument {unknown[0]!r} "
            f"(it takes {', '.join(named) or 'none'})"
        )
    missing = [
        n for n in named if params[n].default is inspect.Parameter.empty and n not in init_args
    ]
    if missing:
        raise ProviderError(f"{key}.init_args: {cls.__qualname__} needs {', '.join(missing)}")


def _instantiate(cls: type, init_args: dict[str, Any], key: str) -> Any:
    try:
        return cls(**init_args)
    except Exception as err:
        raise ProviderError(
            f"{key}: {cls.__qualname__}(**init_args) raised {type(err).__name__}: {_first_line(err)}"
        ) from None


def lr_attribute(module: L.LightningModule) -> str | None:
    """The name Lightning's finder would use for the learning rate, or None if there is none."""
    return next((a for a in LR_ATTRIBUTES if lightning_hasattr(module, a)), None)


def set_lr(module: L.LightningModule, lr: float) -> None:
    """Set the learning rate where ``configure_optimizers`` reads it (as Lightning's finder does)."""
    attribute = lr_attribute(module)
    if attribute is None:
        raise ProviderError(f"{type(module).__qualname__}: no learning-rate attribute")
    lightning_setattr(module, attribute, lr)


def _missing_hooks(obj: Any, base: type, hooks: tuple[str, ...], key: str, path: str) -> None:
    """Refuse an object that leaves a hook to ``base``, whose own only warns or fails."""
    missing = [
        hook
        for hook in hooks
        if (impl := getattr(obj, hook, None)) is None
        or getattr(impl, "__func__", None) is getattr(base, hook)
    ]
    if missing:
        named = ", ".join(f"{hook}()" for hook in missing)
        raise ProviderError(f"{key} = {path!r}: {type(obj).__qualname__} does not define {named}")


def check_user_classes(cfg: ExperimentConfig) -> list[str]:
    """Import and try the user's classes; one line per problem (empty for the built-ins)."""
    problems = []
    if not cfg.builtin_model:
        key, path = "model.class_path", cfg.model.class_path
        try:
            module = build_user_model(cfg)
            _missing_hooks(module, L.LightningModule, MODULE_HOOKS, key, path)
            name = type(module).__qualname__
            if not module.automatic_optimization:
                problems.append(
                    f"{key} = {path!r}: {name} sets automatic_optimization = False; the lab and "
                    "Lightning's LR finder need automatic optimization (the finder never moves "
                    "a manual optimizer's learning rate)"
                )
            if lr_attribute(module) is None:
                problems.append(
                    f"{key} = {path!r}: {name} has no learning-rate attribute: set self.lr (or "
                    "self.learning_rate, or save it in hparams) in __init__ and read it in "
                    "configure_optimizers"
                )
            state = module.state_dict()
            if not state or any(_uninitialized(v) for v in state.values()):
                problems.append(
                    f"{key} = {path!r}: {name} has no (initialised) parameters after __init__; "
                    "the lab checkpoints the initial weights right after construction, so build "
                    "layers in __init__"
                )
        except ProviderError as err:
            problems.append(str(err))
    if not cfg.builtin_data:
        key, path = "data.class_path", cfg.data.class_path
        try:
            datamodule = build_datamodule(cfg, seed=cfg.seed_list[0])
            _missing_hooks(datamodule, L.LightningDataModule, DATA_HOOKS, key, path)
        except ProviderError as err:
            problems.append(str(err))
    return problems


def _uninitialized(value: Any) -> bool:
    from torch.nn.parameter import UninitializedParameter

    return isinstance(value, UninitializedParameter)


def build_user_model(cfg: ExperimentConfig) -> L.LightningModule:
    """Import, check and construct the user's LightningModule (weights not yet loaded)."""
    cls = import_class(cfg.model.class_path, "model.class_path", L.LightningModule)
    _check_init_args(cls, cfg.model.init_args, "model")
    return _instantiate(cls, cfg.model.init_args, "model")


def builtin_kwargs(cfg: ExperimentConfig, lr: float) -> dict[str, Any]:
    """The :class:`RegressionModule` arguments for ``cfg`` at learning rate ``lr``."""
    return {
        "input_dim": input_dim(cfg.data),
        "hidden_dims": list(cfg.model.hidden_dims),
        "lr": lr,
        "optimizer": cfg.optimizer.name,
        "momentum": cfg.optimizer.momentum,
        "weight_decay": cfg.optimizer.weight_decay,
    }


def build_model(cfg: ExperimentConfig, lr: float) -> L.LightningModule:
    """The LightningModule for ``cfg`` at learning rate ``lr`` (weights not yet loaded)."""
    if cfg.builtin_model:
        return RegressionModule(**builtin_kwargs(cfg, lr))
    module = build_user_model(cfg)
    set_lr(module, lr)
    return module


def build_datamodule(
    cfg: ExperimentConfig, seed: int, steps_per_call: int | None = None
) -> L.LightningDataModule:
    """The data for one seed: the built-in data, or the user's DataModule."""
    if cfg.builtin_data:
        return RegressionDataModule(cfg.data, seed, steps_per_call=steps_per_call)
    cls = import_class(cfg.data.class_path, "data.class_path", L.LightningDataModule)
    _check_init_args(cls, cfg.data.init_args, "data")
    return _instantiate(cls, cfg.data.init_args, "data")
