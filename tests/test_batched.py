"""Batched trials measure what sequential trials measure, only sooner."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from lr_lab.cli import main
from lr_lab.training.batched import StackedTrialModule, run_batched, should_batch
from lr_lab.training.runner import run_trial
from tests.conftest import fixed_specs, init_state, only_run_dir, tiny_config
from tests.tb import scalars

ROOT = Path(__file__).resolve().parent.parent


def both_ways(cfg, tmp_path):
    init_state(cfg, tmp_path)
    specs = fixed_specs(cfg, 0, tmp_path)
    sequential = [run_trial(s) for s in specs]
    for s in specs:
        shutil.rmtree(Path(s.log_dir) / s.name)
    return sequential, run_batched(specs)


@pytest.mark.parametrize(
    ("name", "momentum", "lrs"),
    [
        ("sgd", 0.0, [0.05, 0.01, 0.001, 5.0]),
        ("sgd", 0.9, [0.02, 0.005, 0.0005, 1.0]),
        ("adam", 0.0, [0.03, 0.003, 0.0003, 50.0]),
    ],
)
def test_batched_equals_sequential(tmp_path, name, momentum, lrs):
    cfg = tiny_config(optimizer__name=name, optimizer__momentum=momentum, trials__lrs=lrs)
    sequential, batched = both_ways(cfg, tmp_path)
    for s, b in zip(sequential, batched, strict=True):
        assert (s.name, s.lr, s.init_sha256, s.first_batch_sha256) == (
            b.name,
            b.lr,
            b.init_sha256,
            b.first_batch_sha256,
        )
        assert (s.diverged, s.diverged_step, s.steps) == (b.diverged, b.diverged_step, b.steps), (
            s.name
        )
        if not s.diverged:
            torch.testing.assert_close(
                torch.tensor(b.train_loss), torch.tensor(s.train_loss), rtol=1e-4, atol=0
            )
            torch.testing.assert_close(
                torch.tensor(b.val_loss), torch.tensor(s.val_loss), rtol=1e-4, atol=0
            )
    assert any(s.diverged for s in sequential), "each case includes a diverging LR"
    # Each batched trial has its own TensorBoard run, with the same curve as its sequential twin.
    for s, b in zip(sequential, batched, strict=True):
        tags = scalars(tmp_path / b.tb_run)
        assert "loss/train" in tags
        # A diverged copy's curve ends where its sequential twin's does: before the divergence.
        steps = [step for step, _ in tags["loss/train"]]
        assert steps[-1] == (s.diverged_step - 1 if s.diverged else s.steps - 1)
        if not b.diverged:
            assert [v for _, v in tags["loss/train_epoch"]] == pytest.approx(b.train_loss, rel=1e-6)


def test_a_diverging_copy_does_not_touch_the_others(tmp_path):
    calm, wild = tiny_config(trials__lrs=[0.05, 0.01]), tiny_config(trials__lrs=[0.05, 0.01, 50.0])
    init_state(calm, tmp_path / "a")
    init_state(wild, tmp_path / "b")
    without = run_batched(fixed_specs(calm, 0, tmp_path / "a"))
    with_wild = run_batched(fixed_specs(wild, 0, tmp_path / "b"))
    assert with_wild[2].diverged and with_wild[2].diverged_step <= 2
    for a, b in zip(without, with_wild[:2], strict=True):
        torch.testing.assert_close(
            torch.tensor(b.train_loss), torch.tensor(a.train_loss), rtol=1e-6, atol=0
        )
        assert not b.diverged


def test_copies_start_from_the_checkpoint():
    module = StackedTrialModule([0.1, 0.01, 0.001], input_dim=2, hidden_dims=[4])
    state = {n: torch.randn_like(p[0]) for n, p in zip(module._names, module.params)}
    module.load_initial(state)
    for k in range(3):
        for name, tensor in module.copy_state(k).items():
            assert torch.equal(tensor, state[name])
    assert module(torch.randn(5, 2)).shape == (3, 5, 1)


def test_automatic_choice():
    problem = tiny_config().problem
    assert not should_batch(None, problem, 3) and should_batch(None, problem, 4)
    assert not should_batch(False, problem, 11)
    assert should_batch(True, problem, 2) and not should_batch(True, problem, 1)


def sweep(tmp_path: Path, batched: str, extra: list[str]) -> tuple[dict, str]:
    out = tmp_path / batched
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            [
                "--config",
                str(ROOT / "configs/sweep.yaml"),
                *extra,
                "--trials.batched",
                batched,
                "--out",
                str(out),
            ]
        )
    assert code == 0
    return json.loads((only_run_dir(out) / "results.json").read_text()), buf.getvalue()


def ranking(results: dict) -> list[tuple]:
    return [(r["label"], r["rank"], r["verdict"]) for r in results["comparison"]["rows"]]


SHORT = ["--trials.max_epochs", "4", "--data.n_samples", "256", "--finder.num_training", "40"]


@pytest.mark.parametrize(
    "extra", [pytest.param(SHORT, id="short"), pytest.param([], id="full", marks=pytest.mark.slow)]
)
def test_sweep_config_batched_gives_the_same_answer(tmp_path, extra):
    batched, printed = sweep(tmp_path, "true", extra)
    sequential, _ = sweep(tmp_path, "false", extra)
    assert "(batched," in printed
    assert ranking(batched) == ranking(sequential)
    assert [t["verdict"] for t in batched["trials"]] == [t["verdict"] for t in sequential["trials"]]
