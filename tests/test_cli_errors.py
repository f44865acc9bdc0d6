"""Bad input: one clear line per problem naming the key or file, exit code 2, nothing written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from lr_lab.cli import main
from lr_lab.errors import EXIT_BAD_INPUT
from lr_lab.training.initial_state import save_initial_state
from lr_lab.training.model import RegressionModule
from tests.conftest import TINY_ARGS


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def out_with_earlier_run(tmp_path) -> Path:
    out = tmp_path / "runs"
    earlier = out / "20260101-000000-default"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text('{"status": "complete"}\n')
    return out


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def bad_init(tmp_path: Path, kind: str) -> str:
    path = tmp_path / "init.ckpt"
    if kind == "other_arch":
        save_initial_state(RegressionModule(input_dim=3, hidden_dims=[4]), path, {}, 0)
    elif kind == "truncated":
        save_initial_state(RegressionModule(input_dim=1, hidden_dims=[16]), path, {}, 0)
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "not_ckpt":
        torch.save({"model": [1, 2, 3]}, path)
    elif kind == "float64":
        save_initial_state(RegressionModule(input_dim=1, hidden_dims=[16]).double(), path, {}, 0)
    return str(path)


# (arguments, a fragment every message must contain); {tmp} is replaced by the test's folder.
CASES = {
    "unknown key": (["--trials.lr", "[0.1]"], "did you mean trials.lrs"),
    "unknown key in yaml": (
        ["--config", "yaml:data:\n  n_sample: 10\n"],
        "data.init_args.n_sample: unknown key (did you mean data.init_args.n_samples?)",
    ),
    "not an int": (
        ["--data.n_samples", "abc"],
        "data.init_args.n_samples = abc: expected an integer",
    ),
    "bad choice": (
        ["--model.optimizer", "adamw"],
        "model.init_args.optimizer = adamw: expected one of",
    ),
    "moved key": (["--optimizer.name", "adam"], "optimizer.name: now model.init_args.optimizer"),
    "nan lr": (
        ["--trials.lrs", "[0.1, nan]"],
        "trials.lrs = [0.1, nan]: expected a list of numbers",
    ),
    "negative lr": (
        ["--trials.lrs", "[0.1, -1.0]"],
        "trials.lrs[1] = -1.0: learning rates must be finite and in float32's range",
    ),
    "zero lr": (["--trials.lrs", "[0.0]"], "trials.lrs[0] = 0.0"),
    # Beyond float32 torch refuses the LR mid-step; below it the LR is 0 and nothing trains.
    "lr beyond float32": (["--trials.lrs", "[1e39]"], "trials.lrs[0] = 1e+39: learning rates"),
    "lr below float32": (["--trials.lrs", "[1e-50]"], "trials.lrs[0] = 1e-50: learning rates"),
    "finder max_lr beyond float32": (
        ["--finder.max_lr", "1e308"],
        "finder.max_lr = 1e+308: learning rates must be finite and in float32's range",
    ),
    "no lrs": (["--trials.lrs", "[]", "--search.enabled", "false"], "trials.lrs = []"),
    "duplicate lrs": (["--trials.lrs", "[0.1, 0.1]"], "duplicate learning rates [0.1]"),
    "lrs naming one trial": (
        ["--trials.lrs", "[0.01, 0.0100001]"],
        "these read the same at 3 significant digits (lr=0.01)",
    ),
    "zero epochs": (
        ["--trials.max_epochs", "0"],
        "trials.max_epochs = 0: must be a positive integer",
    ),
    "zero batch": (["--data.batch_size", "0"], "data.init_args.batch_size = 0"),
    "batch above train set": (
        ["--data.batch_size", "1000"],
        "data.init_args.batch_size = 1000: must not exceed the 128 training samples",
    ),
    "val_fraction 1": (
        ["--data.val_fraction", "1.0"],
        "data.init_args.val_fraction = 1.0: must be in [0, 1)",
    ),
    "negative noise": (["--data.noise_std", "-1"], "data.init_args.noise_std = -1.0"),
    "min_lr above max_lr": (
        ["--finder.min_lr", "0.5", "--finder.max_lr", "0.1"],
        "finder.min_lr = 0.5: must be below finder.max_lr",
    ),
    "min_lr zero": (["--finder.min_lr", "0"], "finder.min_lr = 0.0: learning rates must be"),
    "num_training too small": (
        ["--finder.num_training", "12"],
        "finder.num_training = 12: must be >= 13",
    ),
    "hidden width": (["--model.hidden_dims", "[0]"], "model.init_args.hidden_dims[0] = 0"),
    "momentum range": (["--model.momentum", "1.5"], "model.init_args.momentum = 1.5"),
    "missing config": (["--config", "{tmp}/nope.yaml"], "nope.yaml: file not found"),
    "config is a folder": (["--config", "{tmp}"], "--config {tmp}: not a regular file"),
    "config is a device": (["--config", "/dev/null"], "--config /dev/null: not a regular file"),
    "invalid yaml": (["--config", "yaml:data: [\n"], "not valid YAML"),
    "yaml not a mapping": (["--config", "yaml:- 1\n- 2\n"], "expected a mapping"),
    # Left to jsonargparse these named no key ("functools.partial(...) argument after **").
    "section not a mapping": (
        ["--config", "yaml:trials: 5\n"],
        "trials = 5 in {tmp}/cfg.yaml: expected a mapping of its keys, e.g. trials: {lrs: ...}",
    ),
    "section null": (["--config", "yaml:finder: null\n"], "finder = null in"),
    "section on the command line": (["--trials", "5"], "trials = 5 on the command line"),
    "dunder key": (["--config", "yaml:__path__: x\n"], "__path__ in {tmp}/cfg.yaml: unknown key"),
    "missing csv": (
        ["--data.csv_path", "{tmp}/nope.csv"],
        "data.init_args.csv_path = '{tmp}/nope.csv': file not found",
    ),
    "empty csv": (["--data.csv_path", "csv:"], "is empty"),
    "non-numeric csv": (["--data.csv_path", "csv:a,b\n1,x\n"], "not numeric"),
    "one-column csv": (["--data.csv_path", "csv:y\n1\n2\n"], "at least 2 columns"),
    "missing init": (["--init", "{tmp}/none.ckpt"], "none.ckpt: initial checkpoint not found"),
    "truncated init": (["--init", "init:truncated"], "not a readable checkpoint"),
    "not a checkpoint": (["--init", "init:not_ckpt"], "no 'state_dict'"),
    "init for other architecture": (
        ["--init", "init:other_arch"],
        "shaped for another architecture",
    ),
    "out is a file": (["--out", "{tmp}/afile/runs"], "is not a folder"),
    "resume non-run": (["--resume", "{tmp}"], "not an lr_lab run folder"),
    "seed above 32 bits": (
        ["--seed", "4294967296"],
        "seed = 4294967296: must be in [0, 4294967295]",
    ),
    "seeds not a list": (["--seeds", "0,1,2"], "seeds = 0,1,2: expected a list of integers"),
    "epochs infinite": (
        ["--trials.max_epochs", ".inf"],
        "trials.max_epochs = .inf: expected an integer",
    ),
    "unknown accelerator": (["--trainer.accelerator", "foo"], "trainer.accelerator = 'foo'"),
    "devices 0": (
        ["--trainer.devices", "0"],
        "trainer.devices = 0: the lab sets it: each trial runs on one device",
    ),
    "devices -1": (["--trainer.devices", "-1"], "trainer.devices = -1"),
    "devices 2": (["--trainer.devices", "2"], "trainer.devices = 2"),
    "model too large": (
        ["--model.hidden_dims", "[100000, 100000]"],
        "model.init_args.hidden_dims = [100000, 100000]: 10,000,400,001 parameters need about",
    ),
    "data too large": (
        ["--data.n_samples", "10000000000"],
        "data.init_args.n_samples = 10000000000: with data.init_args.input_dim = 1 needs about",
    ),
    "recursive yaml anchor": (["--config", "yaml:a: &x [*x]\n"], "nests too deeply"),
    "float64 init": (
        ["--init", "init:float64"],
        "is torch.float64, this model needs torch.float32",
    ),
    "unknown bundled config": (["--config", "nosuch"], "bundled configs in"),
    "max_steps zero": (["--trials.max_steps", "0"], "trials.max_steps = 0"),
    "workers zero": (["--trials.workers", "0"], "trials.workers = 0"),
    "ray cpus negative": (["--ray.cpus_per_trial", "-1"], "ray.cpus_per_trial = -1.0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, out_with_earlier_run, capsys):
    args, fragment = CASES[case]
    (tmp_path / "afile").write_text("x")
    resolved = []
    for arg in args:
        if arg.startswith("yaml:"):
            arg = write(tmp_path, "cfg.yaml", arg[5:])
        elif arg.startswith("csv:"):
            arg = write(tmp_path, "data.csv", arg[4:])
        elif arg.startswith("init:"):
            arg = bad_init(tmp_path, arg[5:])
        resolved.append(arg.replace("{tmp}", str(tmp_path)))
    fragment = fragment.replace("{tmp}", str(tmp_path))
    before = snapshot(out_with_earlier_run)
    out_args = [] if "--out" in args or "--resume" in args else ["--out", str(out_with_earlier_run)]
    code = main([*TINY_ARGS, *resolved, *out_args] if "--resume" not in args else resolved)
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines and all(line.startswith("lr-lab: error: ") for line in lines), captured.err
    assert any(fragment in line for line in lines), captured.err
    assert "Traceback" not in captured.err
    assert snapshot(out_with_earlier_run) == before  # no new run folder, the earlier one intact


def test_all_problems_reported_at_once(tmp_path, capsys):
    code = main(
        [
            *TINY_ARGS,
            "--trials.max_epochs",
            "0",
            "--data.batch_size",
            "0",
            "--finder.min_lr",
            "-1",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 3
    assert [line.split(" = ")[0].removeprefix("lr-lab: error: ") for line in err] == [
        "data.init_args.batch_size",
        "trials.max_epochs",
        "finder.min_lr",
    ]
    assert list(tmp_path.iterdir()) == []


def test_type_errors_and_value_errors_are_all_reported(tmp_path, capsys):
    args = [
        "--data.n_samples",
        "abc",
        "--trials.lr",
        "[1]",
        "--bogus",
        "1",
        "--model.optimizer",
        "adamw",
        "--trials.max_epochs",
        "0",
    ]
    code = main([*args, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "lr-lab: error: --trials.lr: unknown option (did you mean trials.lrs?)",
        "lr-lab: error: --bogus: unknown option",
        "lr-lab: error: model.init_args.optimizer = adamw: expected one of ['sgd', 'adam']",
        "lr-lab: error: data.init_args.n_samples = abc: expected an integer",
        "lr-lab: error: trials.max_epochs = 0: must be a positive integer",
    ]


def test_an_option_without_a_value_does_not_swallow_the_next(tmp_path, capsys):
    code = main(["--verify", "--trials.max_epochs", "0", "stray", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "lr-lab: error: --verify: unknown option (did you mean finder.verify?)",
        "lr-lab: error: unexpected argument 'stray' (options look like --key value)",
        "lr-lab: error: trials.max_epochs = 0: must be a positive integer",
    ]
    assert list(tmp_path.iterdir()) == []


def test_bad_command_line_values_are_reported_before_torch_loads(tmp_path):
    # How fast is the bench's to measure (scripts/bench.py --ways bad-input); what makes it fast
    # is checked here: the process refuses the value without ever importing torch.
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['run.py', '--trials.max_epochs', '0', '--out', {str(tmp_path)!r}]\n"
        "try:\n    runpy.run_path(sys.argv[0] if False else "
        f"{str(root / 'scripts/run.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print(e.code, sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "trials.max_epochs = 0" in proc.stderr
    assert proc.stdout.split() == ["2", "[]"], proc.stdout


@pytest.mark.parametrize("content", ["", "# only a comment\n", "\n\n"])
def test_an_empty_config_means_the_defaults(tmp_path, content, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    assert main(["--config", str(path), "--print_config"]) == 0
    assert "lrs: [0.01, 1.0, 0.0001]" in capsys.readouterr().out
