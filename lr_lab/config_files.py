"""Config files: bundled configs by name, YAML read strictly, class_path/init_args, the dump.

jsonargparse treats a mapping of only ``class_path``/``init_args`` as a subclass of the dataclass
it belongs to, which ``model:`` and ``data:`` are not, so those two keys are taken out of the
command line and the config files here, before jsonargparse sees them, and put back after
(:func:`extract_class_specs`). Imports nothing heavy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from lr_lab.config import ExperimentConfig
from lr_lab.errors import UsageError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
CLASS_SECTIONS = ("model", "data")
# The other sections are plain dataclasses: a file or --trials must give them a mapping.
SECTIONS = tuple(
    f.name
    for f in fields(ExperimentConfig)
    if is_dataclass(getattr(ExperimentConfig(), f.name)) and f.name not in CLASS_SECTIONS
)


def bundled_configs() -> list[str]:
    """Names of the configs shipped in ``configs/`` (usable as ``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []


def resolve_config(name: str) -> Path:
    """A config file's path: as given, or a bundled config by name (``sweep``, ``sweep.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.exists():  # a folder, /dev/null: "not found" would send the user looking elsewhere
        raise UsageError(f"--config {name}: not a regular file")
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
            spec["init_args"], spec["text"] = {}, {}
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
        for name in init_args:  # a later value wins over an earlier one's command-line text
            spec["text"].pop(name, None)


def _file_spec(part: Any, section: str, path: Path) -> dict[str, Any] | None:
    """A config file's ``model:``/``data:`` value as ``{class_path, init_args}`` keys to apply.

    ``model: pkg.Class`` is LightningCLI's shorthand for ``{class_path: pkg.Class}``; ``null`` is
    the built-in. Returns None for a mapping (its keys are taken out by the caller).
    """
    if isinstance(part, dict):
        return None
    if part is None or isinstance(part, str):
        return {"class_path": part or None}
    raise UsageError(
        f"{section} = {part!r} in {path}: expected a mapping of keys or a class path "
        "like mypkg.nets.Net"
    )


def extract_class_specs(
    argv: list[str],
) -> tuple[list[str], dict[str, dict[str, Any]], list[str]]:
    """Take ``model``/``data`` ``class_path`` and ``init_args`` out of argv and config files.

    Left to right, as jsonargparse reads them: ``--config FILE`` (its ``model:``/``data:``
    class keys, or ``model: pkg.Class``), ``--model.class_path X`` (or ``--model X``),
    ``--model.init_args '{k: v}'`` and ``--model.init_args.k v``; the same for ``data``. Each
    config file is replaced by its content without those keys, so jsonargparse sees only the
    dataclass fields.

    Returns:
        The remaining argv; per section ``{"class_path": ..., "init_args": {...}, "text":
        {...}}``, where ``text`` keeps the command-line text of each ``--model.init_args.k v``
        (converted later by the class's type hints, as LightingCLI does); and one line per
        unusable value.
    """
    specs: dict[str, dict[str, Any]] = {
        s: {"class_path": None, "init_args": {}, "text": {}} for s in CLASS_SECTIONS
    }
    out: list[str] = []
    problems: list[str] = []

    def merge(section: str, given: dict[str, Any], key: str) -> None:
        try:
            _merge_spec(specs, section, given, key)
        except UsageError as err:
            problems.append(str(err))

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
                if section not in data:
                    continue
                part = data[section]
                try:
                    shorthand = _file_spec(part, section, path)
                except UsageError as err:
                    problems.append(str(err))
                    del data[section]
                    continue
                if shorthand is not None:
                    del data[section]
                    merge(section, shorthand, section)
                else:
                    given = {k: part.pop(k) for k in ("class_path", "init_args") if k in part}
                    merge(section, given, section)
            problems += _drop_unusable_keys(data, f"in {path}")
            out += ["--config", yaml.safe_dump(data) if data else "{}"]
            i += step
            continue
        section, _, rest = name.removeprefix("--").partition(".")
        if name.startswith("--") and section in CLASS_SECTIONS and value is not None:
            if rest in ("", "class_path"):
                merge(section, {"class_path": value}, section)
            elif rest == "init_args":
                try:
                    merge(section, {"init_args": _class_value(value, name[2:])}, section)
                except UsageError as err:
                    problems.append(str(err))
            elif rest.startswith("init_args."):
                arg = rest.removeprefix("init_args.")
                try:
                    loaded = _class_value(value, name[2:])
                except UsageError:
                    loaded = value  # not YAML, but a fine string (a str parameter takes it)
                merge(section, {"init_args": {arg: loaded}}, section)
                specs[section]["text"][arg] = value
            else:
                out += argv[i : i + step]
            i += step
            continue
        if section in SECTIONS and not rest and value is not None:  # --trials '{...}'
            try:
                bad = _drop_unusable_keys(
                    {section: _class_value(value, section)}, "on the command line"
                )
            except UsageError as err:
                bad = [str(err)]
            if bad:
                problems += bad
                i += step
                continue
        out.append(token)
        i += 1
    return out, specs, problems


def _drop_unusable_keys(data: dict[str, Any], where: str) -> list[str]:
    """One line per section that is not a mapping and per ``__dunder__`` key, each dropped.

    Left in, jsonargparse reports them with messages that name no key.
    """
    problems = []
    for key in list(data):
        if str(key).startswith("__"):
            problems.append(f"{key} {where}: unknown key")
        elif key in SECTIONS and not isinstance(data[key], dict):
            problems.append(
                f"{key} = {'null' if data[key] is None else repr(data[key])} {where}: "
                "expected a mapping of its keys, "
                f"e.g. {key}: {{{next(iter(asdict(getattr(ExperimentConfig(), key))))}: ...}}"
            )
        else:
            continue
        del data[key]
    return problems


def override_argv(keys: dict[str, Any]) -> list[str]:
    """``{"trials.max_epochs": 5}`` as ``["--trials.max_epochs", "5"]``.

    Values go as JSON (which is YAML); strings as they are, since jsonargparse reads a quoted
    string literally.
    """
    argv: list[str] = []
    for key, value in keys.items():
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return argv


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
