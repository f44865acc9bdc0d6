"""The user's classes (or factories, or objects), typed and tried before a run folder exists.

A class is named LightningCLI-style (``class_path`` + ``init_args``), or passed from Python, and
must honour the contract Lightning's own LR finder relies on: the learning rate is an attribute
``lr`` or ``learning_rate`` (on the module or in ``hparams``) that ``configure_optimizers``
reads; ``training_step`` returns the loss; ``validation_step`` logs the metric. What can be
checked before a run folder exists (the import, ``init_args`` typed by the ``__init__`` hints as
LightningCLI types them, the hooks the base classes leave undefined, automatic optimization, the
LR attribute, parameters that exist after ``__init__``) is checked by :func:`resolve`; the rest
stops the run at the step that reveals it (:mod:`lr_lab.training.contract`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L

from lr_lab.config.class_path import qualified_name
from lr_lab.config.hints import Given, Signature, plain
from lr_lab.config.schema import BUILTIN_ARGS, OWNED_TRAINER_KEYS, ExperimentConfig
from lr_lab.errors import ProviderError
from lr_lab.training.problem import (
    FitSettings,
    Problem,
    Source,
    fit_settings,
    lr_attribute,
    problem_of,
)

BASES = {"model": L.LightningModule, "data": L.LightningDataModule}
# What Lightning's base classes only warn or fail about: a class must define these itself.
HOOKS = {"model": ("training_step", "configure_optimizers"), "data": ("train_dataloader",)}


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def type_init_args(section: str, target: Any, init_args: dict[str, Any]) -> tuple[dict, list[str]]:
    """``init_args`` converted by the hints of ``target``'s ``__init__`` (or parameters).

    Returns:
        The converted values (an unannotated parameter keeps its value), and one line per
        unknown key, missing argument or value its hint refuses.
    """
    key = f"{section}.init_args"
    try:
        signature = Signature(target)
    except TypeError:  # an exotic signature: the values go to it as given
        return {k: str(v) if isinstance(v, Given) else v for k, v in init_args.items()}, []
    name = getattr(target, "__qualname__", repr(target))
    if not signature.takes_any and (unknown := [k for k in init_args if k not in signature.names]):
        return {}, [
            f"{key}: {name} has no argument {unknown[0]!r} "
            f"(it takes {', '.join(signature.names) or 'none'})"
        ]
    converted, problems = signature.convert(init_args, f"{key}.")
    missing = [n for n in signature.required if n not in init_args]
    if missing:
        problems.append(f"{key}: {name} needs {', '.join(missing)}")
    return converted, problems


def known_arguments(obj: Any) -> dict[str, Any]:
    """An instance's arguments as far as it records them (``save_hyperparameters``), plain data."""
    hparams = getattr(obj, "hparams", None)
    if not hparams:
        return {}
    return {k: plain(v, None) for k, v in dict(hparams).items() if plain(v, None) is not None}


def _target(section: str, given: Any, path: str) -> Any:
    """What makes the object: the class, factory or instance given, else the one ``path`` names."""
    base = BASES[section]
    obj = given
    if obj is None:
        from lr_lab.config.class_path import import_object

        obj = import_object(path, f"{section}.class_path")
    if isinstance(obj, base) or inspect.isroutine(obj):
        return obj
    if inspect.isclass(obj) and issubclass(obj, base):
        return obj
    what = f"{section}.class_path = {path!r}" if given is None else section
    raise ProviderError(
        f"{what}: not a {base.__name__} subclass, an instance of one, or a function returning one"
    )


def _made(section: str, source: Source, path: str) -> Any:
    """The object the source makes, checked to be what the section needs."""
    base = BASES[section]
    try:
        obj = source.make()
    except Exception as err:
        raise ProviderError(
            f"{section}: {path}(**init_args) raised {type(err).__name__}: {_first_line(err)}"
        ) from None
    if not isinstance(obj, base):
        raise ProviderError(
            f"{section}.class_path = {path!r}: returned a {type(obj).__name__}, not a "
            f"{base.__name__}"
        )
    return obj


def _missing_hooks(obj: Any, section: str, path: str) -> None:
    """Refuse an object that leaves a hook to its base class, whose own only warns or fails."""
    base = BASES[section]
    missing = [
        hook
        for hook in HOOKS[section]
        if (impl := getattr(obj, hook, None)) is None
        or getattr(impl, "__func__", None) is getattr(base, hook)
    ]
    if missing:
        named = ", ".join(f"{hook}()" for hook in missing)
        raise ProviderError(
            f"{section}.class_path = {path!r}: {type(obj).__qualname__} does not define {named}"
        )


def _check_model(module: L.LightningModule, path: str) -> list[str]:
    key, name = f"model.class_path = {path!r}", type(module).__qualname__
    problems = []
    if not module.automatic_optimization:
        problems.append(
            f"{key}: {name} sets automatic_optimization = False; the lab and Lightning's LR finder "
            "need automatic optimization (the finder never moves a manual optimizer's learning rate)"
        )
    if lr_attribute(module) is None:
        problems.append(
            f"{key}: {name} has no learning-rate attribute: set self.lr (or self.learning_rate, or "
            "save it in hparams) in __init__ and read it in configure_optimizers"
        )
    state = module.state_dict()
    if not state or any(_uninitialized(v) for v in state.values()):
        problems.append(
            f"{key}: {name} has no (initialised) parameters after __init__; the lab checkpoints the "
            "initial weights right after construction, so build layers in __init__"
        )
    return problems


def _uninitialized(value: Any) -> bool:
    from torch.nn.parameter import UninitializedParameter

    return isinstance(value, UninitializedParameter)


def type_trainer(trainer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``trainer:`` typed by ``lightning.Trainer``'s hints (the keys the lab owns refused before)."""
    values = {k: v for k, v in trainer.items() if k not in OWNED_TRAINER_KEYS}
    return Signature(L.Trainer, skip=tuple(OWNED_TRAINER_KEYS)).convert(values, "trainer.")


def resolve(
    cfg: ExperimentConfig, model: Any = None, data: Any = None
) -> tuple[Problem, FitSettings, list[str]]:
    """Type and try the config's classes (or the objects given).

    Returns the problem, its fit settings and one line per problem found.

    ``cfg.model``/``cfg.data`` get their typed ``init_args`` (and, for objects, their qualified
    names), so that ``config.yaml`` records what runs.
    """
    problems: list[str] = []
    given = {"model": model, "data": data}
    for section in ("model", "data"):
        spec = getattr(cfg, section)
        obj = given[section]
        if obj is not None:
            spec.class_path = qualified_name(obj)
            if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                spec.init_args = known_arguments(obj)  # an instance: what it says of itself
        if spec.class_path in BUILTIN_ARGS and obj is None:
            continue  # typed with the config (lr_lab.config.parse)
        try:
            target = _target(section, obj, spec.class_path)
        except ProviderError as err:
            problems.append(str(err))
            continue
        if not isinstance(target, BASES[section]):
            spec.init_args, bad = type_init_args(section, target, spec.init_args)
            problems += bad
    trainer, bad = type_trainer(cfg.trainer)
    problems += bad
    trainer = {**trainer, **{k: v for k, v in cfg.trainer.items() if k in OWNED_TRAINER_KEYS}}
    cfg.trainer = trainer
    problem = problem_of(cfg, model, data)
    if problems:
        return problem, fit_settings(cfg, trainer), problems
    for section, source in (("model", problem.model), ("data", problem.data)):
        if source.path in BUILTIN_ARGS and source.target is None:
            continue
        try:
            obj = _made(section, source, spec_path(cfg, section))
            _missing_hooks(obj, section, spec_path(cfg, section))
            if section == "model":
                problems += _check_model(obj, spec_path(cfg, section))
        except ProviderError as err:
            problems.append(str(err))
    return problem, fit_settings(cfg, trainer), problems


def spec_path(cfg: ExperimentConfig, section: str) -> str:
    """The class path of a section, as the config records it."""
    return getattr(cfg, section).class_path


def check_device(trainer: dict[str, Any]) -> list[str]:
    """An accelerator named that torch cannot see, as one line."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda", "mps") or _device_found(accelerator):
        return []
    return [
        f"trainer.accelerator = {accelerator!r}: no {accelerator.upper()} device is visible to "
        "torch on this machine; use cpu or auto"
    ]


def _device_found(accelerator: str) -> bool:
    import torch

    if accelerator == "mps":
        return torch.backends.mps.is_available()
    return torch.cuda.is_available()


def check_init(path: Path, problem: Problem) -> list[str]:
    """An ``--init`` checkpoint that is unreadable or shaped for another model, as one line."""
    from lr_lab.training.initial_state import InitStateError, check_fits, read_initial_state

    try:
        state = read_initial_state(path)["state_dict"]
        check_fits(path, state, problem.make_model(1.0))
    except InitStateError as err:
        return [f"--init {err}"]
    return []
