"""Command-line and YAML parsing into an :class:`~lr_lab.config.ExperimentConfig`, fast and strict.

jsonargparse (the parser behind LightningCLI) validates every key against the type hints of
``config.py``; this module adds what a user needs on top: every problem at once, one line each
naming the key (never jsonargparse's multi-line text), and "did you mean". Config files, bundled
configs and ``class_path`` / ``init_args`` are read in :mod:`lr_lab.config_files`. Imports
nothing heavy.
"""

from __future__ import annotations

import difflib
import re
import shlex
import typing
from argparse import ArgumentError
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_parsing_settings

from lr_lab.argv import drop_option, option_value, print_config_option
from lr_lab.config import ExperimentConfig
from lr_lab.config_files import CONFIG_DIR, DEFAULT_CONFIG, bundled_configs, extract_class_specs
from lr_lab.errors import UsageError

RUN_OPTIONS = ("config", "out", "init", "resume", "print_config", "__default_config__")
MAX_PARSE_ERRORS = 20


@dataclass
class Invocation:
    """What the command line asked for: the experiment and the run options."""

    cfg: ExperimentConfig
    out: str = "runs"
    init: str | None = None
    resume: str | None = None
    config_name: str = "default"
    print_config: str | None = None
    """``check`` (``--print_config``: the config as a run would use it, checked like a run),
    ``skip_check`` (``--print_config=skip_check``: as parsed, unchecked, as in LightningCLI)."""
    problems: list[str] = field(default_factory=list)
    init_text: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per section, the command-line text of each ``--model.init_args.k v`` (see
    :func:`lr_lab.init_args.convert_init_args`)."""


def build_parser() -> ArgumentParser:
    """The parser: every field of :class:`ExperimentConfig` as a dotted option, plus run options."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings -> --help
    parser = ArgumentParser(
        prog="lr-lab",
        description="Train a model at several fixed learning rates from one initial checkpoint, "
        "run Lightning's LR finder from the same checkpoint, train its suggestions, and compare. "
        f"Bundled configs (--config NAME): {', '.join(bundled_configs())} in {CONFIG_DIR}.",
        epilog="--print_config prints the config a run would use, checked, as YAML, and exits "
        "(--print_config=skip_check: as parsed, unchecked).",
        exit_on_error=False,
        allow_abbrev=False,
        default_config_files=[str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.is_file() else None,
    )
    parser.add_argument(
        "--config", action=ActionConfigFile, help="YAML experiment file, or a bundled config's name"
    )
    parser.add_class_arguments(ExperimentConfig, nested_key=None, fail_untyped=True)
    parser.add_argument("--out", type=str, default="runs", help="Folder for new run folders")
    parser.add_argument(
        "--init", type=str | None, default=None, help="Start every trial from this init.ckpt"
    )
    parser.add_argument("--resume", type=str | None, default=None, help="Finish a run folder")
    return parser


def _type_text(tp: Any) -> str:
    """What a value of type ``tp`` looks like, for an error message."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and type(None) in args):
        parts = [_type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin is list:
        inner = {int: "integers, e.g. [0, 1, 2]", float: "numbers, e.g. [0.1, 0.01]"}
        return f"a list of {inner.get(args[0], _type_text(args[0]) + 's') if args else 'values'}"
    if origin is dict:
        return "a mapping, e.g. {hidden: 64}"
    names = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def key_types(cls: type = ExperimentConfig, prefix: str = "") -> dict[str, Any]:
    """Every dotted config key and its type hint."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            out.update(key_types(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def known_keys(parser: ArgumentParser) -> list[str]:
    """Every option the parser knows, without the leading dashes."""
    return [o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")]


def _did_you_mean(key: str, parser: ArgumentParser) -> str:
    close = difflib.get_close_matches(key, known_keys(parser), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _one_line(err: Exception, parser: ArgumentParser, argv: list[str]) -> str:
    """Jsonargparse's (multi-line) error as one line naming the key, with a suggestion.

    The texts matched here are jsonargparse's (tested against the versions pyproject.toml pins,
    in ``tests/test_cli_errors.py``); anything else is still collapsed to one line.
    """
    text = " ".join(str(err).split())
    if m := re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", text):
        key = f"{m.group(1)}.{m.group(2)}"
        return f"{key}: unknown key{_did_you_mean(key, parser)}"
    if m := re.search(r"Key '([\w.]+)' is not expected", text):
        return f"{m.group(1)}: unknown key{_did_you_mean(m.group(1), parser)}"
    if m := re.search(r"Option '([\w.]+)' is not accepted", text):  # an unknown group in a file
        return f"{m.group(1)}: unknown key{_did_you_mean(m.group(1), parser)}"
    if m := re.search(r"[Uu]nrecognized arguments: (\S+)", text):
        token = m.group(1)
        if not token.startswith("--"):
            return f"unexpected argument {token!r} (options look like --key value)"
        key = token[2:].split("=")[0]
        return f"--{key}: unknown option{_did_you_mean(key, parser)}"
    if m := re.search(r'Parser key "config": (.*)', text):
        return f"--config: {m.group(1)}"
    if "Problems parsing config" in text:
        return f"config file is not valid YAML: {text.split(':', 1)[1].strip()}"
    if m := re.search(r'Parser key "([\w.]+)":', text):
        key = m.group(1)
        types = key_types()
        given = option_value(argv, f"--{key}")
        if given is None:
            value = re.search(r"(?:Got|Given) value: (.*?)$", text)
            given = value.group(1) if value else "?"
        if key in types:
            return f"{key} = {given}: expected {_type_text(types[key])}"
        return f"{key}: {text.split(':', 1)[1].strip()}"
    return text


def _parse_collecting(
    parser: ArgumentParser, argv: list[str], found: list[str]
) -> tuple[Namespace, list[str]]:
    """Parse, collecting every type error and unknown option instead of stopping at the first.

    Unknown options are found first, against the parser's keys. jsonargparse then reports one
    type error at a time; after each, the offending command-line option is dropped (its key falls
    back to the config file or default) and parsing is tried again. A bad key or value inside a
    YAML file cannot be stepped over: parsing stops there.

    Args:
        parser: The parser.
        argv: The command line, class keys taken out.
        found: Problems found before parsing, reported after the unknown options.

    Raises:
        UsageError: A problem that cannot be stepped over (with every other one found).
    """
    args, problems = list(argv), []
    keys = set(known_keys(parser))
    for token in argv:
        option = token.split("=")[0]
        if option.startswith("--") and option[2:] not in keys:
            problems.append(f"{option}: unknown option{_did_you_mean(option[2:], parser)}")
            args = drop_option(args, option)
    problems += found
    for _ in range(MAX_PARSE_ERRORS):
        try:
            return parser.parse_args(args), problems
        except (ArgumentError, ValueError, TypeError) as err:
            problems.append(_one_line(err, parser, args))
            text = " ".join(str(err).split())
            if stray := re.search(r"[Uu]nrecognized arguments: (.*)", text):
                for token in stray.group(1).split():  # once each: "1" may also be a value
                    if token in args:
                        args.remove(token)
                continue
            m = re.search(r'Parser key "([\w.]+)":', text)
            option = f"--{m.group(1)}" if m else ""
            if not m or not any(a == option or a.startswith(option + "=") for a in args):
                break  # not a command-line value (e.g. inside a config file): stop here
            args = drop_option(args, option)
    raise UsageError("\n".join(problems))


def parse_args(argv: list[str], parser: ArgumentParser | None = None) -> Invocation:
    """Parse the command line into the experiment config and run options (types only).

    Value checks (:func:`lr_lab.checks.check_config`) come after; type problems, unknown keys
    and unreadable config files are collected into ``problems`` or raised.

    Raises:
        UsageError: Problems that leave no config to check further.
    """
    parser = parser or build_parser()
    print_config, argv = print_config_option(argv)
    config_name = Path(option_value(argv, "--config") or DEFAULT_CONFIG).stem
    argv, extra = _one_value_each(argv)
    argv, specs, class_problems = extract_class_specs(argv)
    ns, problems = _parse_collecting(parser, argv, [*extra, *class_problems])
    values = {k: v for k, v in ns.clone().as_dict().items() if k not in RUN_OPTIONS}
    try:
        built = parser.instantiate(Namespace(**{k: ns[k] for k in values}))
        cfg = ExperimentConfig(**{k: built[k] for k in values})
    except Exception as err:  # jsonargparse re-raises construction errors in several types
        raise UsageError("\n".join([*problems, " ".join(str(err).split())])) from None
    for section, spec in specs.items():
        getattr(cfg, section).class_path = spec["class_path"]
        getattr(cfg, section).init_args = spec["init_args"]
    return Invocation(
        cfg=cfg,
        out=ns.out,
        init=ns.init,
        resume=ns.resume,
        config_name=config_name,
        print_config=print_config,
        problems=problems,
        init_text={section: spec["text"] for section, spec in specs.items()},
    )


def _one_value_each(argv: list[str]) -> tuple[list[str], list[str]]:
    """Words after an option's value, one line each; such a list option is dropped.

    Every option takes exactly one value, so ``--seeds 0 1`` is the list option ``--seeds`` given
    two words: one line says how to give a list (``--seeds '[0, 1]'``). After any other option,
    the extra words are stray arguments. Left to jsonargparse, the extra words would be misread
    (and a stray ``1`` taken for another option's value).
    """
    out: list[str] = []
    problems: list[str] = []
    types = key_types()
    i = 0
    while i < len(argv):
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        key, eq, inline = argv[i].partition("=")
        words = ([inline] if eq else []) + argv[i + 1 : j]
        if not key.startswith("--"):
            stray, keep = argv[i:j], []
        else:
            stray, keep = words[1:], [argv[i]] if eq else argv[i : min(j, i + 2)]
        name = key[2:]
        if stray and (".init_args." in name or "list" in str(types.get(name, ""))):
            example = shlex.quote(f"[{', '.join(words)}]")
            problems.append(
                f"{key} {' '.join(words)}: takes one value; give a list as one YAML/JSON "
                f"value: {key} {example}"
            )
            keep = []  # its first word alone is no list: that error would only repeat this one
        elif stray:
            quoted = ", ".join(repr(word) for word in stray)
            plural = "s" if len(stray) > 1 else ""
            problems.append(f"unexpected argument{plural} {quoted} (options look like --key value)")
        out += keep
        i = j
    return out, problems
