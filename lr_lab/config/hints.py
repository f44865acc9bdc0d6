"""Values converted by type hints with jsonargparse, and one line per value a hint refuses.

The same reading serves every typed thing the lab takes: the config's sections (its dataclasses),
the built-in classes' arguments, a user class's ``__init__`` (or a factory's parameters) and
``lightning.Trainer``'s. jsonargparse (the parser behind LightningCLI) converts each value by its
hint as LightningCLI would (``"1e-4"`` for a ``float`` is the float 1e-4, ``123`` for a ``str``
given on the command line is ``'123'``); the messages come from the hints themselves, never from
jsonargparse's English, so every problem is one line naming the key, the value and the type.
Imports nothing heavy (the signatures it reads belong to whatever the caller imported).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
import warnings
from argparse import ArgumentError
from typing import Any

from jsonargparse import ArgumentParser, Namespace

MAX_SHOWN = 60  # characters of a value quoted in a message


class Given(str):
    """A value as typed on the command line: converted from its text, as LightningCLI does."""


def shown(value: Any) -> str:
    """A value as a message quotes it: text as typed, anything else in Python's spelling, cut.

    Always on one line (an object's repr may span many).
    """
    text = " ".join((str(value) if isinstance(value, str) else repr(value)).split())
    return (
        text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}... ({len(text)} characters)"
    )


def did_you_mean(key: str, known: list[str], prefix: str = "") -> str:
    """`` (did you mean trials.lrs?)`` for the closest known key (after ``prefix``), or ""."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def hint_text(tp: Any) -> str:
    """What a value of type ``tp`` looks like: ``an integer``, ``a list of numbers, e.g. [...]``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [hint_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        examples = {int: "integers, e.g. [0, 1, 2]", float: "numbers, e.g. [0.1, 0.01]"}
        inner = args[0] if args else None
        return "a list of " + (
            examples.get(inner) or (hint_text(inner) + "s" if inner else "values")
        )
    if origin is dict or tp is dict:
        inner = args[1] if len(args) == 2 else Any
        if inner is Any:
            return "a mapping, e.g. {hidden: 64}"
        return f"a mapping of names to {_plural(inner)}"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _plural(tp: Any) -> str:
    """``numbers``, ``mappings of names to numbers``: many values of type ``tp``."""
    if typing.get_origin(tp) is dict:
        inner = typing.get_args(tp)[1]
        return "mappings" if inner is Any else f"mappings of names to {_plural(inner)}"
    names = {int: "integers", float: "numbers", bool: "booleans", str: "strings", Any: "values"}
    return names.get(tp, hint_text(tp) + "s")


def untyped(hint: Any) -> bool:
    """Whether a parameter has no usable type hint (jsonargparse guesses one from its default)."""
    return hint is None or hint is Any or hint is inspect.Parameter.empty or "Untyped" in repr(hint)


class Signature:
    """The typed parameters of a dataclass, class ``__init__``, function or classmethod.

    Args:
        target: What to read: a class or dataclass, a function, or a bound classmethod.
        skip: Parameters not to read (the lab sets them: the learning rate, ...).

    Raises:
        TypeError: jsonargparse cannot read the signature (an exotic one).
    """

    def __init__(self, target: Any, skip: tuple[str, ...] = ()):
        self.parser = _parser(target, skip)
        self.hints = {
            a.dest: getattr(a, "_typehint", None) for a in self.parser._actions if a.dest != "help"
        }
        params = _parameters(target)
        self.takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.names = [
            n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        self.required = [
            n for n, p in params.items()
            if p.default is inspect.Parameter.empty and n in self.names and n not in skip
        ]  # fmt: skip

    def convert(self, values: dict[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
        """``values`` converted by their hints, and one line per key or value refused.

        An unknown key is refused unless the target takes ``**kwargs``; an untyped parameter
        gets its value as given (command-line text read as YAML).

        Args:
            values: The values as given (from YAML, or :class:`Given` text).
            prefix: The config key they sit under, for messages (``model.init_args.``).
        """
        out: dict[str, Any] = {}
        problems: list[str] = []
        for name, value in values.items():
            if name not in self.hints:
                if name in self.names or self.takes_any:  # untyped to jsonargparse, or **kwargs
                    out[name] = as_given(value)
                    continue
                problems.append(
                    f"{prefix}{name}: unknown key{did_you_mean(name, self.names, prefix)}"
                )
                continue
            hint = self.hints[name]
            if untyped(hint):
                out[name] = as_given(value)
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    text = (
                        str(value) if isinstance(value, Given) else value
                    )  # jsonargparse reads str
                    result = self.parser.parse_object({name: text}, defaults=False)[name]
            except (ArgumentError, TypeError, ValueError, KeyError):
                problems.append(f"{prefix}{name} = {shown(value)}: expected {hint_text(hint)}")
                continue
            out[name] = plain(result, value)
        return out, problems


@functools.lru_cache(maxsize=64)
def _parser(target: Any, skip: tuple[str, ...]) -> ArgumentParser:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = ArgumentParser(exit_on_error=False)
        try:
            if inspect.isclass(target):
                parser.add_class_arguments(target, skip=set(skip), fail_untyped=False)
            elif inspect.ismethod(target) and inspect.isclass(target.__self__):
                parser.add_method_arguments(
                    target.__self__, target.__name__, skip=set(skip), fail_untyped=False
                )
            else:
                parser.add_function_arguments(target, skip=set(skip), fail_untyped=False)
        except Exception as err:  # jsonargparse cannot read it: an exotic signature
            raise TypeError(str(err)) from None
    for action in parser._actions:
        action.required = False  # one key is converted at a time; missing ones are named apart
    return parser


def _parameters(target: Any) -> dict[str, inspect.Parameter]:
    try:
        fn = target.__init__ if inspect.isclass(target) else target
        params = dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}
    params.pop("self", None)
    params.pop("cls", None)
    return params


def as_given(value: Any) -> Any:
    """A value as given: command-line text read as YAML (``1e-4`` stays the text YAML makes)."""
    if isinstance(value, Given):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return str(value)
    return value


class _NotData(Exception):
    """A converted value a YAML file cannot hold (a Namespace, a Path, an object)."""


def plain(value: Any, given: Any) -> Any:
    """``value`` as plain YAML data (tuples as lists), else ``given`` as it came."""
    try:
        return _plain(value)
    except _NotData:
        return as_given(given)


def _plain(value: Any) -> Any:
    if isinstance(value, Namespace):
        raise _NotData
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Given):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise _NotData
