"""Config files: bundled configs by name, YAML read strictly and with bounds, the dump.

YAML is read with ``yaml.safe_load`` (no code), and then refused in one line when it cannot be a
config: not a mapping, a recursive anchor, or aliases that expand past ``MAX_NODES`` values (a
"billion laughs" of a few hundred bytes would otherwise take minutes and gigabytes in whatever
walks it next). Imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from lr_lab.config.hints import Given, as_given
from lr_lab.errors import UsageError

# The bundled configs ship inside the package (a wheel has them too); configs/ in a checkout
# links here.
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
MAX_BYTES = 4 * 2**20  # a config file larger than this is not a config
MAX_NODES = 100_000  # values after expanding aliases; a real config has hundreds
HEADER = "# lr_lab: the resolved config of this run (--config reads it back as it is)\n"


def bundled_configs() -> list[str]:
    """Names of the configs shipped with lr_lab (usable as ``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []


def resolve_config(name: str) -> Path:
    """A config file's path: as given, or a bundled config by name (``sweep``, ``sweep.yaml``).

    Raises:
        UsageError: Neither a file nor a bundled config's name.
    """
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
    """A YAML file's top-level mapping (an empty file: {}); one line naming the file if unusable.

    Raises:
        UsageError: Unreadable, too large, not YAML, not a mapping, or unbounded (aliases).
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"{what} {path}: larger than {MAX_BYTES >> 20} MiB; not a config")
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not a text file") from None
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    data = load_yaml(text, f"{what} {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def load_yaml(text: str, where: str) -> Any:
    """``text`` as YAML data, bounded (see the module docstring).

    Raises:
        UsageError: Not valid YAML, recursive, or too large once its aliases are expanded.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"{where}: not valid YAML{at}: {problem}") from None
    except RecursionError:
        raise UsageError(f"{where}: nests too deeply (a recursive YAML anchor?)") from None
    try:
        size = expanded_size(data)
    except RecursionError:
        raise UsageError(f"{where}: nests too deeply (a recursive YAML anchor?)") from None
    if size > MAX_NODES:
        raise UsageError(
            f"{where}: its aliases expand to more than {MAX_NODES:,} values (a YAML alias "
            "bomb?); write the values out"
        )
    return data


def expanded_size(
    value: Any, _sizes: dict[int, int] | None = None, _open: set | None = None
) -> int:
    """How many values ``value`` holds once every YAML alias is expanded.

    Shared parts count each time they are reached; the time is linear in the distinct parts.

    Raises:
        RecursionError: The value contains itself (``a: &x [*x]``) or nests too deeply.
    """
    sizes = {} if _sizes is None else _sizes
    open_ = set() if _open is None else _open
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in open_:
        raise RecursionError("recursive")
    if key not in sizes:
        open_.add(key)
        items = value.values() if isinstance(value, dict) else value
        # Capped: a bomb's total would be a number of hundreds of digits.
        sizes[key] = min(MAX_NODES + 1, 1 + sum(expanded_size(v, sizes, open_) for v in items))
        open_.discard(key)
    return sizes[key]


class _Dumper(yaml.SafeDumper):
    """Mappings in blocks (a key a line, easy to diff), lists inline (``lrs: [0.1, 0.01]``)."""


_Dumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, True)
)
# Command-line text not yet typed (--print_config=skip_check): as YAML reads it.
_Dumper.add_representer(Given, lambda dumper, value: dumper.represent_data(as_given(value)))


def dump_config(cfg: Any) -> str:
    """The resolved config as YAML that ``--config`` reads back to the same config.

    Written from the dataclasses (every key, ``null`` included: a dropped
    ``early_stop_threshold: null`` would read back as 4.0).
    """
    return HEADER + yaml.dump(
        asdict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False
    )


def flat_keys(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
