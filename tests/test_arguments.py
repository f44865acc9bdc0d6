"""The config file a run writes reads back as the same config, every key, null included."""

from __future__ import annotations

import json
import typing
from dataclasses import asdict

import pytest

from lr_lab.arguments import key_types, parse_args
from lr_lab.cli import main
from lr_lab.config import ExperimentConfig
from lr_lab.config_files import dump_config, flat_keys, resolve_config


def other_value(tp, default):
    """A value of type ``tp`` that is not ``default``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if default is not None:
            return None  # null must survive too (finder.early_stop_threshold: null)
        return other_value(next(a for a in args if a is not type(None)), None)
    if origin is typing.Literal:
        return next(a for a in args if a != default)
    if origin is list:
        inner = typing.get_args(args[0]) if typing.get_origin(args[0]) is typing.Literal else None
        if inner:
            return [inner[-1]]
        return [7, 8] if args[0] is int else [0.3, 0.003]
    if origin is dict:
        return {"hidden": 5, "name": "x", "sizes": [1, 2]}
    if tp is bool:
        return not default
    if tp is int:
        return (default or 0) + 3
    if tp is float:
        return (default or 0) * 2 + 0.25
    if tp is str:
        return "pkg.mod.Thing" if default is None else f"{default}_x"
    raise AssertionError(tp)


def test_every_key_round_trips_through_config_yaml(tmp_path, capsys):
    defaults = flat_keys(asdict(ExperimentConfig()))
    argv = []
    for key, tp in key_types().items():
        value = "auto" if key == "trainer.devices" else other_value(tp, defaults[key])
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    inv = parse_args(argv)
    assert inv.problems == []
    cfg = inv.cfg
    wanted = flat_keys(asdict(cfg))
    assert all(wanted[k] != defaults[k] for k in wanted), "every key holds a non-default value"
    assert wanted["finder.early_stop_threshold"] is None
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    again = parse_args(["--config", str(path)]).cfg
    assert flat_keys(asdict(again)) == wanted
    # Unchecked: these values only need to parse (the class paths do not import).
    assert main(["--config", str(path), "--print_config=skip_check"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == dump_config(cfg).strip()


def test_class_keys_from_file_and_command_line():
    inv = parse_args(
        [
            "--config",
            "digits",
            "--model.init_args.hidden",
            "32",
            "--data.init_args",
            "{batch_size: 8}",
        ]
    )
    assert inv.cfg.model.class_path == "lr_lab.examples.digits.DigitsClassifier"
    assert inv.cfg.model.init_args == {"hidden": 32, "optimizer": "sgd", "momentum": 0.9}
    assert inv.cfg.data.init_args == {"batch_size": 8}
    # A new class starts without the previous class's arguments, as in LightningCLI.
    other = parse_args(["--config", "digits", "--model", "tests.user_modules.TinyNet"]).cfg
    assert other.model.class_path == "tests.user_modules.TinyNet" and other.model.init_args == {}


def test_bundled_configs_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("sweep").name == "sweep.yaml"
    assert parse_args(["--config", "sweep"]).cfg.seeds == [0, 1, 2]
    with pytest.raises(Exception, match="bundled configs in .*adam, default, digits, study, sweep"):
        resolve_config("nope")
