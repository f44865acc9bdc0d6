"""The config layer: every key typed by the schema, round-tripping through config.yaml, light."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from lr_lab.cli import main
from lr_lab.config.command_line import parse_argv
from lr_lab.config.files import dump_config, resolve_config
from lr_lab.config.parse import DEFAULTS, SCALARS, load
from lr_lab.config.schema import BUILTIN_ARGS, SECTIONS, ExperimentConfig
from lr_lab.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


def key_types() -> dict[str, typing.Any]:
    """Every dotted key of the schema (the built-in classes' init_args included), and its hint."""
    hints = typing.get_type_hints(ExperimentConfig)
    out = {k: hints[k] for k in SCALARS}
    for section, cls in SECTIONS.items():
        out |= {f"{section}.{k}": v for k, v in typing.get_type_hints(cls).items()}
    for section, path in DEFAULTS.items():
        hints = typing.get_type_hints(BUILTIN_ARGS[path])
        out |= {f"{section}.init_args.{k}": v for k, v in hints.items()}
    return out


def flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "trainer":
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


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
    defaults = flat(asdict(ExperimentConfig()))
    argv = []
    for key, tp in key_types().items():
        value = other_value(tp, defaults[key])
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    request = parse_argv(argv)
    assert request.problems == []
    wanted = flat(asdict(request.config))
    changed = [k for k in key_types() if wanted[k] != defaults[k]]
    assert changed == list(key_types()), "every key holds a non-default value"
    assert wanted["finder.early_stop_threshold"] is None
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(request.config))
    again = parse_argv(["--config", str(path)])
    assert again.problems == [] and flat(asdict(again.config)) == wanted
    # Unchecked: these values only need to parse.
    assert main(["--config", str(path), "--print_config=skip_check"]) == 0
    assert capsys.readouterr().out.strip() == dump_config(request.config).strip()


def test_class_keys_from_file_and_command_line():
    request = parse_argv(
        [
            "--config",
            "digits",
            "--model.init_args.hidden",
            "32",
            "--data.init_args",
            "{batch_size: 8}",
        ]
    )
    cfg = request.config
    assert cfg.model.class_path == "lr_lab.examples.digits.DigitsClassifier"
    # A user class's arguments are typed once it is imported (here: as given).
    assert cfg.model.init_args == {"hidden": "32", "optimizer": "sgd", "momentum": 0.9}
    assert cfg.data.init_args == {"batch_size": 8}
    # A new class starts without the previous class's arguments, as in LightningCLI.
    other = parse_argv(["--config", "digits", "--model", "tests.user_modules.TinyNet"]).config
    assert other.model.class_path == "tests.user_modules.TinyNet" and other.model.init_args == {}


def test_built_in_arguments_given_directly_are_init_args():
    # LightningCLI's --model.hidden for --model.init_args.hidden; the same in a file or a dict.
    a = parse_argv(["--model.hidden_dims", "[8]", "--data.n_samples", "100"]).config
    b = load({"model": {"hidden_dims": [8]}, "data": {"init_args": {"n_samples": 100}}}).config
    c = load(None, {"model.init_args.hidden_dims": [8], "data.n_samples": 100}).config
    assert a == b == c and a.model.init_args["hidden_dims"] == [8]


def test_bundled_configs_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("sweep").name == "sweep.yaml"
    assert parse_argv(["--config", "sweep"]).config.seeds == [0, 1, 2]
    with pytest.raises(
        Exception, match="bundled configs in .*adam, default, digits, forecasting, study, sweep"
    ):
        resolve_config("nope")


def test_every_built_in_class_takes_the_arguments_its_schema_describes():
    # The light schema (checked before torch loads) and the classes must not drift apart.
    import inspect

    from lr_lab.config.class_path import import_object

    for path, args in BUILTIN_ARGS.items():
        params = inspect.signature(import_object(path, "test")).parameters
        assert {f.name for f in fields(args)} <= set(params), path


def test_the_api_reads_objects_without_an_argv_parser_or_a_temporary_file(monkeypatch, tmp_path):
    import tempfile

    import lr_lab.config.command_line

    def refused(*args, **kwargs):
        raise AssertionError("called")

    monkeypatch.setattr(lr_lab.config.command_line, "parse_argv", refused)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refused)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refused)
    request = load({"trials": {"lrs": [0.1], "max_epochs": 1}}, {"seed": 3})
    assert request.problems == [] and request.config.seed == 3
    assert request.config.trials.lrs == [0.1]
    cfg = ExperimentConfig()
    cfg.trials.max_epochs = 2
    assert load(cfg).config == cfg


def test_the_parse_and_check_path_loads_no_torch(tmp_path):
    # Bad input is reported before torch (and Lightning, 4 s here) is imported.
    code = (
        "import sys\n"
        "from lr_lab.config.command_line import parse_argv\n"
        "from lr_lab.api import check\n"
        "from lr_lab.errors import UsageError\n"
        f"r = parse_argv(['--config', 'sweep', '--trials.max_epochs', '0', '--out', {str(tmp_path)!r}])\n"
        "try:\n    check(r)\nexcept UsageError as e:\n    print(e)\n"
        f"check(parse_argv(['--config', 'sweep', '--print_config', '--out', {str(tmp_path)!r}]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["trials.max_epochs = 0: must be a positive integer", "[]"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("a: &a [1,1,1,1,1,1,1,1,1]\n"
         + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                   for p, c in zip("abcdefgh", "bcdefghi")), "alias bomb"),
        ("a: &x [*x]\n", "nests too deeply"),
    ],
    ids=["alias bomb", "recursive"],
)  # fmt: skip
def test_a_yaml_bomb_is_one_line_at_once(tmp_path, text, fragment):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=fragment) as err:
        parse_argv(["--config", str(path)]).problems and None
        raise UsageError("\n".join(parse_argv(["--config", str(path)]).problems))
    assert "\n" not in str(err.value)


def test_a_long_value_is_cut_in_its_message():
    problems = parse_argv(["--trials.max_epochs", "x" * 100_000]).problems
    assert len(problems) == 1 and len(problems[0]) < 200 and "(100000 characters)" in problems[0]
