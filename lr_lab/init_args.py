"""A user class's ``init_args`` checked and converted by its ``__init__`` type hints.

LightningCLI hands ``init_args`` to jsonargparse, which converts each value by the type hint of
its ``__init__`` parameter or refuses it; so does the lab, before a run folder exists. YAML 1.1
reads ``1e-4`` as a string, so ``--model.init_args.wd 1e-4`` (or ``{wd: 1e-4}`` in a file)
reaches a ``wd: float`` parameter as the float 1e-4, and ``hidden: int`` given 4.5 is one line
naming the key. The converted values go into the config, so ``config.yaml`` records them and
``--resume`` reads them back. Unannotated parameters keep the value as given.
"""

from __future__ import annotations

import types
import typing
import warnings
from argparse import ArgumentError
from typing import Any

import lightning as L
from jsonargparse import ArgumentParser

from lr_lab.config import ExperimentConfig
from lr_lab.errors import ProviderError
from lr_lab.providers import import_class

BASES = {"model": L.LightningModule, "data": L.LightningDataModule}
PLAIN = (str, int, float, bool, type(None))


def convert_user_init_args(cfg: ExperimentConfig, text: dict[str, dict[str, str]]) -> list[str]:
    """Convert each user class's ``init_args`` in place; one line per value that does not fit.

    Args:
        cfg: The config; ``model.init_args`` and ``data.init_args`` are replaced by their
            converted values.
        text: Per section, the command-line text of each ``--model.init_args.k v`` (converted
            from the text, as LightningCLI does, so that ``name: str`` given 123 is '123').

    Returns:
        One line per problem: a class that cannot be imported, a value its type hint refuses.
    """
    problems: list[str] = []
    for section, base in BASES.items():
        part = getattr(cfg, section)
        if not part.class_path:
            continue
        try:
            cls = import_class(part.class_path, f"{section}.class_path", base)
        except ProviderError as err:
            problems.append(str(err))
            continue
        converted, bad = convert_init_args(
            cls, part.init_args, f"{section}.init_args", text.get(section, {})
        )
        part.init_args = converted
        problems += bad
    return problems


def convert_init_args(
    cls: type, init_args: dict[str, Any], key: str, text: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``init_args`` converted by the type hints of ``cls.__init__`` (jsonargparse's reading).

    Args:
        cls: The user's class.
        init_args: The values as given (YAML-loaded).
        key: The config key, for messages (``model.init_args``).
        text: The command-line text of some values, converted instead of the YAML-loaded value.

    Returns:
        A new dict of the values (converted where a type hint says how; unknown and
        unannotated keys as given: the provider's own check names unknown keys), and one line
        per value its type hint refuses.
    """
    text = text or {}
    converted = dict(init_args)
    parser = _signature_parser(cls)
    if parser is None:
        return converted, []
    actions = {a.dest: a for a in parser._actions}
    problems = []
    for name, value in init_args.items():
        hint = getattr(actions.get(name), "_typehint", None)
        if _untyped(hint):
            continue
        candidates = [text[name], value] if name in text else [value]
        for given in candidates:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = parser.parse_object({name: given})[name]
            except (ArgumentError, TypeError, ValueError):
                continue
            # A nested class or dataclass comes back as a Namespace: the class gets the mapping.
            converted[name] = _as_data(result, value)
            break
        else:
            problems.append(f"{key}.{name} = {value!r}: expected {_hint_text(hint)}")
    return converted, problems


def _signature_parser(cls: type) -> ArgumentParser | None:
    """A parser of ``cls.__init__``'s parameters (None if jsonargparse cannot read it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = ArgumentParser(exit_on_error=False)
            parser.add_class_arguments(cls, fail_untyped=False)
    except Exception:  # an exotic signature: the values go to the class as given
        return None
    for action in parser._actions:
        action.required = False  # one key is parsed at a time; missing keys are named elsewhere
    return parser


def _untyped(hint: Any) -> bool:
    """Whether a parameter has no type hint (jsonargparse guesses one from its default)."""
    return hint is None or hint is Any or "Untyped" in repr(hint)


class _NotData(Exception):
    """A converted value config.yaml cannot hold (a Namespace, a Path, an object)."""


def _as_data(value: Any, given: Any) -> Any:
    """``value`` as plain YAML data (tuples as lists), else ``given``: what config.yaml holds."""
    try:
        return _plain(value)
    except _NotData:
        return given


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, PLAIN):
        return value
    raise _NotData


def _hint_text(hint: Any) -> str:
    """A type hint as a user writes it: ``int``, ``list[int]``, ``float | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_hint_text(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")
