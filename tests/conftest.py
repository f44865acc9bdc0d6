from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from lr_lab.config import DataConfig, ExperimentConfig, FinderConfig, ModelConfig, TrialsConfig
from lr_lab.trainer import quiet_lightning

quiet_lightning()

# Small enough for a whole experiment in a couple of seconds on 2 CPU cores.
TINY_ARGS = [
    "--data.n_samples", "160",
    "--data.batch_size", "32",
    "--model.hidden_dims", "[16]",
    "--trials.lrs", "[0.05, 0.001, 5.0]",
    "--trials.max_epochs", "3",
    "--finder.num_training", "30",
]  # fmt: skip


def tiny_config(**overrides) -> ExperimentConfig:
    cfg = ExperimentConfig(
        data=DataConfig(n_samples=160, batch_size=32),
        model=ModelConfig(hidden_dims=[16]),
        trials=TrialsConfig(lrs=[0.05, 0.001, 5.0], max_epochs=3),
        finder=FinderConfig(num_training=30),
    )
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        setattr(getattr(cfg, section), name, value) if name else setattr(cfg, section, value)
    return cfg


@pytest.fixture
def tiny_cfg() -> ExperimentConfig:
    return tiny_config()


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
