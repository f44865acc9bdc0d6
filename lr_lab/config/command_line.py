"""The command line's words: ``lr-lab [--config FILE] [--key value ...]`` as a request.

Every option takes exactly one value (``--key value`` or ``--key=value``); its text is read by
the key's type hint, as LightningCLI reads it. The options then merge in order with the config
files they name (:mod:`lr_lab.config.parse`). ``--help`` is generated from the schema by
jsonargparse. Imports nothing heavy.
"""

from __future__ import annotations

import shlex

from lr_lab.config.files import read_yaml_mapping, resolve_config
from lr_lab.config.parse import (
    CLASS_SECTIONS,
    DEFAULTS,
    RESUME_OPTIONS,
    SECTIONS,
    Request,
    _Merge,
    _typed,
    known_keys,
)
from lr_lab.config.schema import BUILTIN_ARGS, ExperimentConfig
from lr_lab.errors import UsageError

RUN_OPTIONS = ("config", "out", "init", "resume", "print_config", "help")
STRAY = "\0stray"  # a word that is no option's value, in _tokens' output


def _tokens(argv: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """``[(option, value)]``, every option taking exactly one value, in order.

    A stray word is ``(STRAY, its one line)`` where it stands.

    ``--seeds 0 1`` is the list option ``--seeds`` given two words: one line says how to give a
    list (``--seeds '[0, 1]'``). Left to any parser, the extra words would be misread.
    """
    out: list[tuple[str, str | None]] = []
    problems: list[str] = []
    i = 0
    while i < len(argv):
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--"):
            j += 1
        token = argv[i]
        if token in ("-h", "--help"):
            out.append(("help", None))
            i = j
            continue
        if not token.startswith("--"):
            words = ", ".join(repr(w) for w in argv[i:j])
            plural = "s" if j - i > 1 else ""
            out.append(
                (STRAY, f"unexpected argument{plural} {words} (options look like --key value)")
            )
            i = j
            continue
        key, eq, inline = token[2:].partition("=")
        words = ([inline] if eq else []) + argv[i + 1 : j]
        if len(words) > 1:
            value = "[" + ", ".join(words) + "]"
            if key in ("seeds", "trials.lrs", "finder.rules") or ".init_args." in f".{key}":
                problems.append(f"--{key} {' '.join(words)}: takes one value; give a list as "
                                f"one YAML/JSON value: --{key} {shlex.quote(value)}")  # fmt: skip
                i = j
                continue
            quoted = ", ".join(repr(w) for w in words[1:])
            out.append((key, words[0]))
            out.append((STRAY, f"unexpected argument{'s' if len(words) > 2 else ''} {quoted} "
                               "(options look like --key value)"))  # fmt: skip
            i = j
            continue
        out.append((key, words[0] if words else None))
        i = j
    return out, problems


def parse_argv(argv: list[str]) -> Request:
    """The command line as a :class:`Request`: the config, typed, and the run options.

    Problems that still leave a config to check further (an unknown key, a value its type
    refuses: the default stands in) are collected in ``request.problems``. With ``--resume`` the
    run folder's own config is read later; only where its trials run may change.

    Raises:
        UsageError: ``--resume`` with options it does not take, or an unknown --print_config mode.
    """
    options, problems = _tokens(argv)
    request = Request(ExperimentConfig())
    merge = _Merge()
    merge.problems = problems
    if any(key == "resume" for key, _ in options):
        return _resume_request(options, problems)
    for key, value in options:
        if key == STRAY:
            merge.problems.append(value)
        elif key == "help":
            request.help = True
        elif key == "print_config":
            if value not in (None, "skip_check"):
                raise UsageError(f"--print_config={value}: unknown mode (only skip_check)")
            request.print_config = value or "check"
        elif value is None:
            known = key in RUN_OPTIONS or key in known_keys() or key.split(".")[0] in CLASS_SECTIONS
            if known:
                merge.problems.append(f"--{key}: expected a value")
            else:
                merge.unknown(key, cli=True)
        elif key == "config":
            try:
                path = resolve_config(value)
                merge.mapping(read_yaml_mapping(path, "--config"), f"in {path}")
                request.name = path.stem
            except UsageError as err:
                merge.problems.append(str(err))
        elif key in ("out", "init"):
            setattr(request, key, value)
        else:
            merge.option(key, value)
    request.config, more = _typed(merge.raw)
    request.problems, request.given = merge.problems + more, merge.given
    return request


def _resume_request(options: list[tuple[str, str | None]], problems: list[str]) -> Request:
    """``--resume RUN_DIR``, and where its trials may run now (not part of the experiment)."""
    request = Request(ExperimentConfig())
    other = []
    for key, value in options:
        if key == "resume" and value is not None:
            request.resume = value
        elif key == STRAY:
            other.append(value)
        elif key in RESUME_OPTIONS and value is not None:
            request.overrides[key] = value
        else:
            other.append(f"--{key}")
    if request.resume is None:
        raise UsageError("--resume: expected a run folder")
    if other or problems:
        got = " ".join(other) or problems[0]
        allowed = ", ".join(f"--{o}" for o in RESUME_OPTIONS)
        raise UsageError(
            f"--resume {request.resume}: takes no other options but where trials run "
            f"({allowed}); got {got}: the run keeps its config"
        )
    return request


def help_text() -> str:
    """``--help``: every key, its type, default and docstring, from the schema (jsonargparse)."""
    import warnings

    from jsonargparse import ArgumentParser, set_parsing_settings

    from lr_lab.config.files import bundled_configs

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings -> help
    parser = ArgumentParser(
        prog="lr-lab",
        description="Train a model at several fixed learning rates from one initial checkpoint, "
        "run Lightning's LR finder from the same checkpoint, train its suggestions, and compare. "
        f"Bundled configs (--config NAME): {', '.join(bundled_configs())}.",
        epilog="model and data take a class_path and init_args, as LightningCLI: --model "
        "mypkg.Net --model.init_args.hidden 64 (or --model.hidden 64); the init_args shown are "
        "the built-in classes'. trainer takes lightning.Trainer arguments (--trainer."
        "gradient_clip_val 1.0). --print_config prints the config a run would use, checked "
        "(--print_config=skip_check: as parsed). --resume RUN_DIR finishes a run.",
    )
    parser.add_argument("--config", help="A YAML experiment file, or a bundled config's name")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skip = {*SECTIONS, *CLASS_SECTIONS, "trainer"}
        parser.add_class_arguments(ExperimentConfig, nested_key=None, skip=skip)
        for section, path in DEFAULTS.items():
            parser.add_argument(f"--{section}.class_path", default=path,
                                help=f"Your {'LightningModule' if section == 'model' else 'LightningDataModule'} (or a function returning one)")  # fmt: skip
            parser.add_class_arguments(BUILTIN_ARGS[path], f"{section}.init_args")
        for section, cls in SECTIONS.items():
            parser.add_class_arguments(cls, section)
    parser.add_argument("--trainer.accelerator", default="auto", help="and any lightning.Trainer "
                        "argument as --trainer.NAME")  # fmt: skip
    parser.add_argument("--out", default="runs", help="Folder for new run folders")
    parser.add_argument("--init", help="Start every seed from this init.ckpt")
    parser.add_argument("--resume", help="Finish a run folder")
    return parser.format_help()
