"""Config files, dicts and command-line options, merged and typed into an ``ExperimentConfig``.

One reading for every caller: ``lr-lab``'s argv (:mod:`lr_lab.config.command_line`), and the
Python API's path, dict or object (:func:`load`). Sources are merged in order (a config file where ``--config``
stands, each ``--key value`` where it stands), as LightningCLI merges them: ``model:`` and
``data:`` take a ``class_path`` (or a bare class path) and ``init_args``, a new class starts with
no arguments, and an argument given directly (``--data.n_samples 500``) is an ``init_args`` one.
Every value is then converted by its type hint (:mod:`lr_lab.config.hints`); every problem is one
line, all of them at once. A user class's arguments are typed by its own hints once it is
imported (:mod:`lr_lab.training.classes`), after these light checks. Imports nothing heavy.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from lr_lab.config.files import load_yaml, read_yaml_mapping, resolve_config
from lr_lab.config.hints import Given, Signature, did_you_mean, shown
from lr_lab.config.schema import (
    BUILTIN_ARGS,
    BUILTIN_DATA,
    BUILTIN_MODEL,
    CLASS_SECTIONS,
    SECTIONS,
    ClassConfig,
    ExperimentConfig,
)
from lr_lab.errors import UsageError

# Options --resume takes: where the trials run is not part of the experiment.
RESUME_OPTIONS = ("trials.executor", "trials.workers", "ray.address", "ray.cpus_per_trial",
                  "ray.gpus_per_trial")  # fmt: skip
MOVED = {
    "optimizer.name": "model.init_args.optimizer",
    "optimizer.momentum": "model.init_args.momentum",
    "optimizer.weight_decay": "model.init_args.weight_decay",
}
DEFAULTS = {"model": BUILTIN_MODEL, "data": BUILTIN_DATA}
SCALARS = tuple(
    f.name
    for f in fields(ExperimentConfig)
    if f.name not in (*SECTIONS, *CLASS_SECTIONS, "trainer")
)


@dataclass
class Request:
    """What the command line asked for: the experiment, and how to run it."""

    config: ExperimentConfig
    out: str = "runs"
    init: str | None = None
    resume: str | None = None
    name: str = "default"
    print_config: str | None = None  # "check" (--print_config) or "skip_check"
    help: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # --resume's executor options
    problems: list[str] = field(default_factory=list)
    given: set[str] = field(default_factory=set)  # the class sections a class_path was given for


def known_keys() -> list[str]:
    """Every dotted key a config takes (a user class's arguments aside)."""
    keys = list(SCALARS) + [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in fields(cls)]
    for section, path in DEFAULTS.items():
        keys += [section, f"{section}.class_path", f"{section}.init_args"]
        keys += [f"{section}.{f.name}" for f in fields(BUILTIN_ARGS[path])]
    return [*keys, "trainer"]


class _Merge:
    """The raw config built from sources in order, and the problems met on the way."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {s: {} for s in (*SECTIONS, "trainer")}
        for section, path in DEFAULTS.items():
            self.raw[section] = {"class_path": path, "init_args": {}}
        self.problems: list[str] = []
        self.given: set[str] = set()  # class sections whose class_path the user gave

    def unknown(self, key: str, cli: bool) -> None:
        if key in MOVED:
            self.problems.append(f"{key}: now {MOVED[key]} (an argument of the built-in model)")
        elif cli:
            self.problems.append(f"--{key}: unknown option{did_you_mean(key, known_keys())}")
        else:
            self.problems.append(f"{key}: unknown key{did_you_mean(key, known_keys())}")

    def mapping(self, data: dict[str, Any], where: str, cli: bool = False) -> None:
        """Merge a config file's (or a dict's) top-level mapping."""
        for key, value in data.items():
            key = str(key)
            if key in CLASS_SECTIONS:
                self.class_section(key, value, where)
            elif key in SECTIONS or key == "trainer":
                if not isinstance(value, dict):
                    example = f"{key}: {{{fields(SECTIONS[key])[0].name}: ...}}" if key in SECTIONS else "trainer: {gradient_clip_val: 1.0}"  # fmt: skip
                    null = "null" if value is None else shown(repr(value))
                    self.problems.append(f"{key} = {null} {where}: expected a mapping of its "
                                         f"keys, e.g. {example}")  # fmt: skip
                    continue
                self.section(key, value, where, cli)
            elif key in SCALARS:
                self.raw[key] = value
            elif isinstance(value, dict) and value and not key.startswith("__"):
                for sub in value:
                    self.unknown(f"{key}.{sub}", cli)
            else:
                self.unknown(key, cli) if not key.startswith("__") else self.problems.append(
                    f"{key} {where}: unknown key"
                )

    def section(self, key: str, value: dict[str, Any], where: str, cli: bool) -> None:
        if key == "trainer":
            self.raw["trainer"].update({str(k): v for k, v in value.items()})
            return
        names = {f.name for f in fields(SECTIONS[key])}
        for sub, v in value.items():
            if str(sub) in names:
                self.raw[key][str(sub)] = v
            else:
                self.unknown(f"{key}.{sub}", cli)

    def class_section(self, key: str, value: Any, where: str) -> None:
        """``model: pkg.Net`` (LightningCLI's shorthand), or ``{class_path, init_args, arg: v}``."""
        spec = self.raw[key]
        if value is None or isinstance(value, str):
            value = {"class_path": value}
        if not isinstance(value, dict):
            self.problems.append(f"{key} = {shown(repr(value))} {where}: expected a mapping of "
                                 "keys or a class path like mypkg.nets.Net")  # fmt: skip
            return
        if "class_path" in value:
            self.given.add(key)
            path = value["class_path"] or DEFAULTS[key]  # null: the built-in
            if not isinstance(path, str):
                self.problems.append(f"{key}.class_path = {shown(repr(path))}: expected a dotted "
                                     "path like mypkg.nets.Net")  # fmt: skip
            elif path != spec["class_path"]:
                spec["class_path"], spec["init_args"] = path, {}  # a new class: new arguments
        init_args = value.get("init_args") or {}
        if not isinstance(init_args, dict):
            self.problems.append(f"{key}.init_args = {shown(repr(init_args))}: expected a "
                                 "mapping, e.g. {hidden: 64}")  # fmt: skip
            init_args = {}
        direct = {k: v for k, v in value.items() if k not in ("class_path", "init_args")}
        spec["init_args"].update({str(k): v for k, v in {**init_args, **direct}.items()})

    def option(self, key: str, text: str) -> None:
        """One ``--key value`` of the command line (``text`` is read by the key's type hint)."""
        head, _, rest = key.partition(".")
        if head in CLASS_SECTIONS:
            if rest in ("", "init_args"):
                loaded = self.yaml_value(key, text)
                if rest == "" and not isinstance(loaded, dict):
                    loaded = {"class_path": text}  # --model pkg.Net
                elif rest == "init_args":
                    loaded = {"init_args": loaded}
                self.class_section(head, loaded, "on the command line")
            elif rest == "class_path":
                self.class_section(head, {"class_path": text}, "on the command line")
            else:
                name = rest.removeprefix("init_args.")
                self.raw[head]["init_args"][name] = Given(text)
            return
        if head in SECTIONS or head == "trainer":
            if not rest:
                loaded = self.yaml_value(key, text)
                if loaded is not None:
                    self.mapping({head: loaded}, "on the command line", cli=True)
            elif head == "trainer":
                self.raw["trainer"][rest] = Given(text)
            else:
                self.section(head, {rest: Given(text)}, "on the command line", cli=True)
            return
        if key in SCALARS:
            self.raw[key] = Given(text)
        else:
            self.unknown(key, cli=True)

    def yaml_value(self, key: str, text: str) -> Any:
        try:
            return load_yaml(text, f"--{key}")
        except UsageError as err:
            self.problems.append(str(err))
            return None


def load(config: Any = None, overrides: dict[str, Any] | None = None) -> Request:
    """The Python API's config, with dotted ``overrides`` on top, as a :class:`Request`.

    ``config`` is a path or a bundled config's name, a dict, an ExperimentConfig, or None for the
    defaults.

    Raises:
        UsageError: A config of another kind, or overrides that are not a dict.
    """
    merge = _Merge()
    request = Request(ExperimentConfig(), name="api")
    if isinstance(config, (str, Path)):
        try:
            path = resolve_config(str(config))
            merge.mapping(read_yaml_mapping(path, "config"), f"in {path}")
            request.name = path.stem
        except UsageError as err:
            merge.problems.append(str(err))
    elif isinstance(config, dict) or is_dataclass(config):
        data = plain_data(asdict(config) if is_dataclass(config) else config, "")
        merge.mapping(data, "in config")
    elif config is not None:
        raise UsageError(
            f"config: expected a path, a dict or an ExperimentConfig, got {type(config).__name__}"
        )
    if not isinstance(overrides, dict | None):
        raise UsageError(
            f"overrides: expected a dict of dotted keys, e.g. {{'trials.max_epochs': 5}}, "
            f"got {type(overrides).__name__}"
        )
    for key, value in (overrides or {}).items():
        nested: Any = plain_data(value, key)
        for part in reversed(str(key).split(".")):
            nested = {part: nested}
        merge.mapping(nested, "in overrides")
    request.config, more = _typed(merge.raw)
    request.problems, request.given = merge.problems + more, merge.given
    return request


def plain_data(value: Any, key: str) -> Any:
    """``value`` as what YAML and JSON hold: numpy (and torch) values as Python numbers and lists.

    Raises:
        UsageError: A value that is not data (naming its key).
    """
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UsageError(f"{key}: keys must be strings, got {shown(list(value))}")
        return {k: plain_data(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if value is None or type(value) in (str, int, float, bool):
        return value
    if hasattr(value, "tolist") and not isinstance(value, type):  # numpy, a torch tensor
        return plain_data(value.tolist(), key)
    for kind in (bool, int, float, str):  # subclasses yaml.safe_dump refuses
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise UsageError(
        f"{key} = {shown(value)}: not a config value ({type(value).__name__}); use numbers, "
        "strings, lists and mappings"
    )


def _typed(raw: dict[str, Any]) -> tuple[ExperimentConfig, list[str]]:
    """The raw config typed by the schema's hints; a refused value leaves its default."""
    problems: list[str] = []
    scalars = {k: raw[k] for k in SCALARS if k in raw}
    values, bad = Signature(ExperimentConfig, skip=(*SECTIONS, *CLASS_SECTIONS, "trainer")).convert(
        scalars, ""
    )
    problems += bad
    cfg = ExperimentConfig(**values)
    for section in CLASS_SECTIONS:
        spec = raw[section]
        path = spec["class_path"]
        if not isinstance(path, str) or "." not in path.strip(".") or " " in path:
            problems.append(f"{section}.class_path = {shown(path)}: expected a dotted path "
                            "like mypkg.nets.Net")  # fmt: skip
            continue
        init_args = copy.deepcopy(spec["init_args"])
        if path in BUILTIN_ARGS:
            args_cls = BUILTIN_ARGS[path]
            values, bad = Signature(args_cls).convert(init_args, f"{section}.init_args.")
            problems += bad
            init_args = asdict(args_cls(**values))
        setattr(cfg, section, ClassConfig(path, init_args))
    for section, cls in SECTIONS.items():
        values, bad = Signature(cls).convert(raw[section], f"{section}.")
        problems += bad
        setattr(cfg, section, cls(**values))
    cfg.trainer = {**cfg.trainer, **raw["trainer"]}
    return cfg, problems
