from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

import pytest

from lr_lab.config.parse import load
from lr_lab.experiment.orchestrate import prepare_initial_state
from lr_lab.experiment.plan import fixed_trials, seed_dir
from lr_lab.experiment.trials import specs
from lr_lab.training.problem import Experiment, TrialSpec, fit_settings, problem_of
from lr_lab.training.trainer import quiet_lightning

quiet_lightning()

# The tests send signals to runs and expect them to act. A suite started in the background of a
# script (`cmd &` ignores SIGINT) or under nohup (SIGHUP) would pass those ignored dispositions
# to every run it starts, and the lab keeps a signal ignored at start ignored (as it should, for
# nohup): restore the defaults here, so the suite behaves the same however it is launched.
for _sig, _default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGHUP, signal.SIG_DFL),
                       (signal.SIGTERM, signal.SIG_DFL)):  # fmt: skip
    if signal.getsignal(_sig) is signal.SIG_IGN:
        signal.signal(_sig, _default)

# Small enough for a whole experiment in a couple of seconds on 2 CPU cores.
TINY_ARGS = [
    "--data.n_samples", "160",
    "--data.batch_size", "32",
    "--model.hidden_dims", "[16]",
    "--trials.lrs", "[0.05, 0.001, 5.0]",
    "--trials.max_epochs", "3",
    "--finder.num_training", "30",
]  # fmt: skip


TINY = {
    "data.n_samples": 160,
    "data.batch_size": 32,
    "model.hidden_dims": [16],
    "trials.lrs": [0.05, 0.001, 5.0],
    "trials.max_epochs": 3,
    "finder.num_training": 30,
}
RENAMED = {"optimizer.name": "model.optimizer", "optimizer.momentum": "model.momentum"}


def experiment(overrides: dict | None = None, base: dict | None = None) -> Experiment:
    """The built-in experiment with dotted ``overrides``, as the API reads it (checked)."""
    request = load(None, {**(TINY if base is None else base), **(overrides or {})})
    assert request.problems == [], request.problems
    cfg = request.config
    return Experiment(cfg, problem_of(cfg), fit_settings(cfg))


def tiny_config(**overrides) -> Experiment:
    """The tiny experiment; ``trials__lrs=[...]`` sets ``trials.lrs``."""
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    return experiment({RENAMED.get(k, k): v for k, v in dotted.items()})


def fixed_specs(exp: Experiment, seed: int, run_dir: Path, threads: int = 1) -> list[TrialSpec]:
    """The grid trials of one seed, as an executor gets them."""
    return specs(fixed_trials(exp.cfg, seed), exp.problem, exp.fit, run_dir, threads)


def init_state(exp: Experiment, run_dir: Path, seed: int = 0) -> str:
    """``run_dir/seedN/init.ckpt`` made as a run makes it; its sha256."""
    return prepare_initial_state(exp.problem, seed, seed_dir(run_dir, seed), None, None)


@pytest.fixture
def tiny_cfg() -> Experiment:
    return tiny_config()


def validate(argv: list[str]) -> Experiment:
    """The command line parsed and checked as ``lr-lab`` does it (raises UsageError)."""
    from lr_lab import api
    from lr_lab.config.command_line import parse_argv

    request = parse_argv(argv)
    if request.resume is not None:
        request = api.resume_request(request.resume, request.overrides)
    return api.check(request)


def only_run_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``lr-lab args`` in this process: the exit code, stdout and stderr."""
    from lr_lab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


_started: list = []  # the processes a test started (track), killed if still alive after it


def track(proc):  # noqa: ANN001, ANN201
    """Register a test's subprocess: if the test fails before it ends, it is killed afterwards."""
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    # A failed assertion must not leave a lab running (an endless step would eat a core for the
    # rest of the suite, and every later timing with it).
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
