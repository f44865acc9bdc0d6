"""Command-line and YAML parsing into an :class:`~lr_lab.config.ExperimentConfig`, fast and strict.

jsonargparse (the parser behind LightningCLI) validates every key against the type hints of
``config.py``; this module adds what a user needs on top: every problem at once, one line each
naming the key (never jsonargparse's multi-line text), "did you mean", bundled configs by name,
and LightningCLI-style ``class_path`` / ``init_args`` for the user's model and data classes.

jsonargparse treats a mapping of only ``class_path``/``init_args`` as a subclass of the dataclass
it belongs to, which ``model:`` and ``data:`` are not, so those two keys are taken out of the
command line and the config files here, before jsonargparse sees them, and put back after.
Imports nothing heavy.
"""

from __future__ import annotations

import difflib
import re
import typing
from argparse import ArgumentError
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_parsing_settings

from lr_lab.config import ExperimentConfig
from lr_lab.errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
RUN_OPTIONS = ("config", "out", "init", "resume", "print_config", "__default_config__")
CLASS_SECTIONS = ("model", "data")
MAX_PARSE_ERRORS = 20


@dataclass
class Invocation:
    """What the command line asked for: the experiment and the run options."""

    cfg: ExperimentConfig
    out: str = "runs"
    init: str | None = None
    resume: str | None = None
    config_name: str = "default"
    print_config: bool = False
    problems: list[str] = field(default_factory=list)


def build_parser() -> ArgumentParser:
    """The parser: every field of :class:`ExperimentConfig` as a dotted option, plus run options."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings -> --help
    parser = ArgumentParser(
        prog="lr-lab",
        description="Train a model at several fixed learning rates from one initial checkpoint, "
        "run Lightning's LR finder from the same checkpoint, train its suggestions, and compare. "
        f"Bundled configs (--config NAME): {', '.join(bundled_configs())} in {CONFIG_DIR}.",
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


def bundled_configs() -> list[str]:
    """Names of the configs shipped in ``configs/`` (usable as ``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []


def resolve_config(name: str) -> Path:
    """A config file's path: as given, or a bundled config by name (``sweep``, ``sweep.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if path.parent == Path(".") and bundled.is_file():
        return bundled
    known = ", ".join(bundled_configs()) or "none"
    raise UsageError(f"--config {name}: file not found (bundled configs in {CONFIG_DIR}: {known})")


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty file: {}); one line naming the file if unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"{what} {path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not a text file") from None
    except RecursionError:
        raise UsageError(f"{what} {path}: nests too deeply (a recursive YAML anchor?)") from None
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: expected a mapping of keys, got {type(data).__name__}")
    if _cyclic(data):
        raise UsageError(f"{what} {path}: nests too deeply (a recursive YAML anchor?)")
    return data


def _cyclic(value: Any, ancestors: frozenset[int] = frozenset()) -> bool:
    """Whether a loaded YAML value contains itself (``a: &x [*x]``)."""
    if not isinstance(value, (dict, list)):
        return False
    if id(value) in ancestors:
        return True
    inner = ancestors | {id(value)}
    items = value.values() if isinstance(value, dict) else value
    return any(_cyclic(v, inner) for v in items)


def _class_value(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UsageError(f"{key} = {text}: not a valid YAML value") from None


def _merge_spec(specs: dict[str, dict[str, Any]], section: str, given: dict[str, Any], key: str):
    """Apply a ``{class_path, init_args}`` mapping; a new class starts with no init_args."""
    spec = specs[section]
    if "class_path" in given:
        class_path = given["class_path"]
        if class_path is not None and not isinstance(class_path, str):
            raise UsageError(f"{key}.class_path = {class_path!r}: expected a dotted class name")
        if class_path != spec["class_path"]:
            spec["init_args"] = {}
        spec["class_path"] = class_path
    if "init_args" in given:
        init_args = given["init_args"]
        if init_args is None:
            init_args = {}
        if not isinstance(init_args, dict) or not all(isinstance(k, str) for k in init_args):
            raise UsageError(
                f"{key}.init_args = {init_args!r}: expected a mapping, e.g. {{hidden: 64}}"
            )
        spec["init_args"].update(init_args)


def extract_class_specs(argv: list[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Take ``model``/``data`` ``class_path`` and ``init_args`` out of argv and config files.

    Left to right, as jsonargparse reads them: ``--config FILE`` (its ``model:``/``data:``
    class keys), ``--model.class_path X`` (or ``--model X``), ``--model.init_args '{k: v}'`` and
    ``--model.init_args.k v``; the same for ``data``. Each config file is replaced by its
    content without those keys, so jsonargparse sees only the dataclass fields.

    Returns:
        The remaining argv, and per section ``{"class_path": ..., "init_args": {...}}``.
    """
    specs: dict[str, dict[str, Any]] = {
        s: {"class_path": None, "init_args": {}} for s in CLASS_SECTIONS
    }
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=")
        has_value = bool(eq) or (i + 1 < len(argv) and not argv[i + 1].startswith("--"))
        value = inline if eq else (argv[i + 1] if has_value else None)
        step = 1 if eq or not has_value else 2
        if name == "--config" and value is not None:
            path = resolve_config(value)
            data = read_yaml_mapping(path, "--config")
            for section in CLASS_SECTIONS:
                part = data.get(section)
                if isinstance(part, dict):
                    given = {k: part.pop(k) for k in ("class_path", "init_args") if k in part}
                    _merge_spec(specs, section, given, section)
            out += ["--config", yaml.safe_dump(data) if data else "{}"]
            i += step
            continue
        section, _, rest = name.removeprefix("--").partition(".")
        if name.startswith("--") and section in CLASS_SECTIONS and value is not None:
            if rest in ("", "class_path"):
                _merge_spec(specs, section, {"class_path": value}, section)
            elif rest == "init_args":
                _merge_spec(specs, section, {"init_args": _class_value(value, name[2:])}, section)
            elif rest.startswith("init_args."):
                arg = rest.removeprefix("init_args.")
                _merge_spec(
                    specs, section, {"init_args": {arg: _class_value(value, name[2:])}}, section
                )
            else:
                out += argv[i : i + step]
            i += step
            continue
        out.append(token)
        i += 1
    return out, specs


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


def _parse_collecting(parser: ArgumentParser, argv: list[str]) -> tuple[Namespace, list[str]]:
    """Parse, collecting every type error and unknown option instead of stopping at the first.

    Unknown options are found first, against the parser's keys. jsonargparse then reports one
    type error at a time; after each, the offending command-line option is dropped (its key falls
    back to the config file or default) and parsing is tried again. A bad key or value inside a
    YAML file cannot be stepped over: parsing stops there.

    Raises:
        UsageError: A problem that cannot be stepped over.
    """
    args, problems = list(argv), []
    keys = set(known_keys(parser))
    for token in argv:
        option = token.split("=")[0]
        if option.startswith("--") and option[2:] not in keys:
            problems.append(f"{option}: unknown option{_did_you_mean(option[2:], parser)}")
            args = drop_option(args, option)
    for _ in range(MAX_PARSE_ERRORS):
        try:
            return parser.parse_args(args), problems
        except (ArgumentError, ValueError, TypeError) as err:
            problems.append(_one_line(err, parser, args))
            text = " ".join(str(err).split())
            if stray := re.search(r"[Uu]nrecognized arguments: (.*)", text):
                tokens = stray.group(1).split()
                args = [a for a in args if a not in tokens]
                continue
            m = re.search(r'Parser key "([\w.]+)":', text)
            option = f"--{m.group(1)}" if m else ""
            if not m or not any(a == option or a.startswith(option + "=") for a in args):
                break  # not a command-line value (e.g. inside a config file): stop here
            args = drop_option(args, option)
    raise UsageError("\n".join(problems))


def option_value(argv: list[str], name: str) -> str | None:
    """The value given to option ``name`` (last one wins), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
    return found


def drop_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without option ``name`` and its value."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == name:
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def parse_args(argv: list[str], parser: ArgumentParser | None = None) -> Invocation:
    """Parse the command line into the experiment config and run options (types only).

    Value checks (:func:`lr_lab.checks.check_config`) come after; type problems, unknown keys
    and unreadable config files are collected into ``problems`` or raised.

    Raises:
        UsageError: Problems that leave no config to check further.
    """
    parser = parser or build_parser()
    print_config = "--print_config" in argv
    argv = [a for a in argv if a != "--print_config"]
    config_name = Path(option_value(argv, "--config") or DEFAULT_CONFIG).stem
    argv, specs = extract_class_specs(argv)
    ns, problems = _parse_collecting(parser, argv)
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
    )


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML that ``--config`` reads back to the same config.

    Written from the dataclasses (every key, ``null`` included: jsonargparse's own dump drops
    ``None``, and a dropped ``early_stop_threshold: null`` would read back as 4.0).
    """
    header = "# lr_lab: the resolved config of this run (--config reads it back as it is)\n"
    return header + yaml.safe_dump(asdict(cfg), sort_keys=False, default_flow_style=None)


def flat_keys(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}`` (init_args stay one value)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "init_args":
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
