"""How a user's classes are configured and checked before a run folder exists.

``init_args`` converted by the ``__init__`` type hints (as LightningCLI does), classes that cannot
train refused, one line per bad value, and the Python API's config values, errors and resume.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import lr_lab
from tests.conftest import only_run_dir, validate
from tests.test_run_folder import run_cli
from tests.user_config_modules import HintedNet

MOD = "tests.user_config_modules"
ARGS = [
    "--model.class_path", f"{MOD}.HintedNet",
    "--data.class_path", f"{MOD}.Data",
    "--trials.lrs", "[0.05]",
    "--trials.max_epochs", "1",
    "--finder.enabled", "false",
]  # fmt: skip


def refused(args: list[str], out: Path) -> list[str]:
    """The error lines of a run that must stop before any run folder exists."""
    code, printed, err = run_cli([*args, "--out", str(out)])
    assert code == 2 and printed == "", err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # no run folder
    lines = err.strip().splitlines()
    assert all(line.startswith("lr-lab: error: ") for line in lines), err
    return [line.removeprefix("lr-lab: error: ") for line in lines]


def converted(args: list[str], tmp_path: Path) -> dict:
    return validate([*ARGS, *args, "--out", str(tmp_path)]).cfg.model.init_args


@pytest.mark.parametrize(
    "args",
    [
        ["--model.init_args.wd", "1e-4"],
        ["--model.init_args", '{"wd": 1e-4}'],
        ["--model.init_args", "{wd: 1e-4}"],
        ["--config", "yaml:model: {init_args: {wd: 1e-4}}"],
    ],
    ids=["cli key", "json", "yaml flow", "config file"],
)
def test_init_args_are_converted_by_the_type_hints(args, tmp_path):
    # YAML 1.1 reads 1e-4 as a string; the wd: float hint makes it the float LightningCLI gives.
    if args[0] == "--config":
        (tmp_path / "c.yaml").write_text(args[1].removeprefix("yaml:"))
        args = ["--config", str(tmp_path / "c.yaml")]
    init_args = converted(args, tmp_path)
    assert init_args["wd"] == 1e-4 and type(init_args["wd"]) is float


def test_each_value_is_read_as_its_hint_says(tmp_path):
    init_args = converted(
        [
            *("--model.init_args.hidden", "6"),
            *("--model.init_args.sizes", "[1, 2]"),
            *("--model.init_args.name", "123"),  # name: str keeps the text, as LightningCLI
            *("--model.init_args.untyped", "1e-4"),  # no hint: the value as given
        ],
        tmp_path,
    )
    assert init_args == {"hidden": 6, "sizes": [1, 2], "name": "123", "untyped": "1e-4"}


@pytest.mark.parametrize(
    "key, value, line",
    [
        ("hidden", "4.5", "model.init_args.hidden = 4.5: expected an integer"),
        ("hidden", "four", "model.init_args.hidden = four: expected an integer"),
        (
            "sizes",
            "[1, 2.5]",
            "model.init_args.sizes = [1, 2.5]: expected a list of integers, e.g. [0, 1, 2] or null",
        ),
        ("wd", "[1]", "model.init_args.wd = [1]: expected a number"),
    ],
)
def test_a_value_that_does_not_fit_its_hint_is_one_line(key, value, line, tmp_path):
    out = tmp_path / "runs"
    assert refused([*ARGS, f"--model.init_args.{key}", value], out) == [line]


def test_every_bad_init_arg_is_reported_at_once(tmp_path):
    args = [*ARGS, "--model.init_args.hidden", "4.5", "--data.init_args.batch_size", "x"]
    lines = refused(args, tmp_path / "runs")
    assert lines == [
        "model.init_args.hidden = 4.5: expected an integer",
        "data.init_args.batch_size = x: expected an integer",
    ]


def test_print_config_shows_the_converted_values_and_refuses_bad_ones(tmp_path):
    # As LightningCLI's --print_config: the config a run would use, checked like one.
    code, printed, err = run_cli([*ARGS, "--model.init_args.wd", "1e-4", "--print_config"])
    assert code == 0, err
    assert yaml.safe_load(printed)["model"]["init_args"]["wd"] == 1e-4
    lines = refused([*ARGS, "--model.init_args.hidden", "4.5", "--print_config"], tmp_path)
    assert lines == ["model.init_args.hidden = 4.5: expected an integer"]
    # skip_check prints what was parsed, unchecked and unconverted.
    args = [*ARGS, "--model.init_args.hidden", "4.5", "--print_config=skip_check"]
    code, printed, err = run_cli(args)
    assert code == 0 and yaml.safe_load(printed)["model"]["init_args"]["hidden"] == 4.5, err
    assert refused(["--print_config=yes"], tmp_path) == [
        "--print_config=yes: unknown mode (only skip_check)"
    ]


def test_converted_values_are_what_the_run_records_and_resume_reads(tmp_path):
    code, _, err = run_cli([*ARGS, "--model.init_args.wd", "1e-4", "--out", str(tmp_path)])
    assert code == 0, err
    run_dir = only_run_dir(tmp_path)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["init_args"]
    recorded = json.loads((run_dir / "results.json").read_text())["config"]["model"]
    assert saved == recorded["init_args"] == {"wd": 1e-4}
    assert converted(["--config", str(run_dir / "config.yaml")], tmp_path) == {"wd": 1e-4}
    code, printed, err = run_cli(["--resume", str(run_dir)])
    assert code == 0 and "nothing to do" in printed, err


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--model.class_path", f"{MOD}.ManualNet"],
            f"model.class_path = '{MOD}.ManualNet': ManualNet sets automatic_optimization = False",
        ),
        (
            ["--model.class_path", "lightning.LightningModule"],
            "model.class_path = 'lightning.LightningModule': LightningModule does not define "
            "training_step(), configure_optimizers()",
        ),
        (
            ["--model.class_path", f"{MOD}.NoTrainingStep"],
            f"model.class_path = '{MOD}.NoTrainingStep': NoTrainingStep does not define "
            "training_step()",
        ),
        (
            ["--data.class_path", "lightning.LightningDataModule"],
            "data.class_path = 'lightning.LightningDataModule': LightningDataModule does not "
            "define train_dataloader()",
        ),
        (
            ["--data.class_path", f"{MOD}.NoTrainLoader"],
            f"data.class_path = '{MOD}.NoTrainLoader': NoTrainLoader does not define "
            "train_dataloader()",
        ),
    ],
    ids=["manual optimization", "LightningModule", "no training_step", "DataModule", "no loader"],
)
def test_classes_that_cannot_train_are_refused_before_the_run_folder(args, line, tmp_path):
    lines = refused([*ARGS, *args], tmp_path / "runs")
    assert len(lines) == 1 and lines[0].startswith(line), lines


def test_sys_exit_at_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "um_exit.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = refused([*ARGS, "--model.class_path", "um_exit.Net"], tmp_path / "runs")
    assert lines == ["model.class_path = 'um_exit.Net': importing um_exit: it called sys.exit(3)"]


def test_ctrl_c_at_import_stays_an_interrupt(tmp_path, monkeypatch):
    (tmp_path / "um_ctrl_c.py").write_text("raise KeyboardInterrupt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        validate([*ARGS, "--model.class_path", "um_ctrl_c.Net", "--out", str(tmp_path)])
    sys.modules.pop("um_ctrl_c", None)


def test_keyboard_interrupt_from_a_users_init_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "um_kbi.py").write_text(
        "import lightning as L\n"
        "class Net(L.LightningModule):\n"
        "    def __init__(self, lr: float = 0.1):\n"
        "        super().__init__()\n"
        "        raise KeyboardInterrupt\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    code, printed, err = run_cli([*ARGS, "--model.class_path", "um_kbi.Net", "--out", str(out)])
    sys.modules.pop("um_kbi", None)
    assert code == 130 and printed == "" and not out.exists()
    assert err == "lr-lab: error: interrupted by Ctrl-C before the run started; nothing written\n"


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["--seeds", "0", "1", "--trials.max_epochs", "1"],
            "--seeds 0 1: takes one value; give a list as one YAML/JSON value: --seeds '[0, 1]'",
        ),
        (
            ["--trials.max_epochs", "1", "2"],
            "unexpected argument '2' (options look like --key value)",
        ),
        (
            ["--model.init_args.sizes", "1", "2"],
            "--model.init_args.sizes 1 2: takes one value; give a list as one YAML/JSON value: "
            "--model.init_args.sizes '[1, 2]'",
        ),
    ],
)
def test_an_option_given_several_words_is_one_true_line(args, line, tmp_path):
    # Each option takes one value: the extra words were once read as stray arguments too, and
    # the stray '1' of "--seeds 0 1" was also taken out of "--trials.max_epochs 1".
    assert refused(args, tmp_path / "runs") == [line]


def test_a_bare_class_path_in_a_config_file_is_the_class(tmp_path):
    cfg = tmp_path / "short.yaml"
    cfg.write_text(f"model: {MOD}.HintedNet\ndata: {MOD}.Data\n")
    inv = validate(["--config", str(cfg), *ARGS[4:], "--out", str(tmp_path)])
    assert inv.cfg.model.class_path == f"{MOD}.HintedNet"
    assert inv.cfg.data.class_path == f"{MOD}.Data"


def test_bad_class_values_in_a_config_file_are_one_line_each(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: 5\ndata: [1]\nseed: x\n")
    assert refused(["--config", str(cfg)], tmp_path / "runs") == [
        f"model = 5 in {cfg}: expected a mapping of keys or a class path like mypkg.nets.Net",
        f"data = [1] in {cfg}: expected a mapping of keys or a class path like mypkg.nets.Net",
        "seed = x: expected an integer",
    ]


API_CONFIG = {
    "model": {"class_path": f"{MOD}.HintedNet", "init_args": {"wd": np.float32(0.5)}},
    "data": {"class_path": f"{MOD}.Data"},
    "trials": {"lrs": np.logspace(-3, -1, 3), "max_epochs": np.int64(1)},
    "finder": {"enabled": np.bool_(False)},
}


def test_the_api_takes_numpy_values(tmp_path):
    results = lr_lab.run(API_CONFIG, out=tmp_path, quiet=True, overrides={"seed": np.int32(3)})
    assert results.status == "complete"
    assert results.config["trials"]["lrs"] == pytest.approx([0.001, 0.01, 0.1])
    assert results.config["model"]["init_args"] == {"wd": 0.5} and results.config["seed"] == 3


@pytest.mark.parametrize(
    "config, message",
    [
        ({"trialz": {"lrs": [0.1]}}, "trialz.lrs: unknown key (did you mean trials.lrs?)"),
        ({"trials": {"lrs": [object()]}}, "trials.lrs[0] = <object object at"),
        # The dict went through a temporary file: the message names the config, not that file.
        ({"trials": 5}, "trials = 5 in config: expected a mapping of its keys"),
    ],
)
def test_api_errors_read_as_the_command_lines(config, message, tmp_path):
    with pytest.raises(lr_lab.UsageError) as err:
        lr_lab.run(config, out=tmp_path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_api_overrides_must_be_a_dict(tmp_path):
    with pytest.raises(lr_lab.UsageError, match="overrides: expected a dict of dotted keys"):
        lr_lab.run("default", out=tmp_path, overrides=[1, 2])


def test_a_damaged_run_folder_is_a_lab_error_from_the_api(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "results.json").write_text("{trunc")
    with pytest.raises(lr_lab.LabError, match="results.json") as err:
        lr_lab.resume(tmp_path)
    assert "\n" not in str(err.value)


def test_an_api_run_stopped_by_ctrl_c_finishes_with_lr_lab_resume(tmp_path, monkeypatch):
    original = HintedNet.training_step

    def ctrl_c_mid_trial(self, batch, batch_idx):
        if self.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(HintedNet, "training_step", ctrl_c_mid_trial)
    config = {**API_CONFIG, "trials": {"lrs": [0.05, 0.01], "max_epochs": 1}}
    with pytest.raises(KeyboardInterrupt) as stopped:
        lr_lab.run(config, out=tmp_path, quiet=True)
    run_dir = only_run_dir(tmp_path)
    assert str(stopped.value) == f"stopped; finish with: lr_lab.resume({str(run_dir)!r})"
    monkeypatch.setattr(HintedNet, "training_step", original)
    results = lr_lab.resume(run_dir, quiet=True)
    assert results.status == "complete" and len(results.trials) == 2
