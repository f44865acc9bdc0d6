"""Trials start from identical weights, see identical data, and measure what plain PyTorch does."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lr_lab.analysis.records import INIT_FILE, seed_dir
from lr_lab.training.model import SimpleRegressionNet
from lr_lab.training.problem import Experiment
from lr_lab.training.runner import run_trial
from tests.conftest import experiment, fixed_specs, init_state, tiny_config
from tests.tb import scalars


def run_fixed(cfg: Experiment, run_dir: Path):
    sha = init_state(cfg, run_dir)
    return sha, [run_trial(spec) for spec in fixed_specs(cfg, 0, run_dir)]


def test_trials_share_initial_weights_and_first_batch(tmp_path):
    cfg = tiny_config()
    sha, results = run_fixed(cfg, tmp_path)
    assert {r.init_sha256 for r in results} == {sha}
    assert len({r.first_batch_sha256 for r in results}) == 1
    first_losses = {r.first_step_loss for r in results}
    assert len(first_losses) == 1  # the same weights on the same batch: the same loss
    # Read back from TensorBoard: every trial's curve starts at that same step-0 loss.
    for r in results:
        curve = scalars(tmp_path / r.tb_run)["loss/train"]
        assert curve[0][0] == 0 and abs(curve[0][1] - r.first_step_loss) < 1e-6


def test_diverging_lr_is_stopped_and_marked(tmp_path):
    cfg = tiny_config()
    _, results = run_fixed(cfg, tmp_path)
    by_lr = {r.lr: r for r in results}
    bad = by_lr[5.0]
    assert bad.diverged and bad.diverged_step is not None
    assert bad.steps == bad.diverged_step + 1  # stopped at the step it diverged
    good = by_lr[0.05]
    assert not good.diverged and len(good.train_loss) == 3 and len(good.val_loss) == 3
    assert good.train_loss[-1] < good.train_loss[0]
    assert bad.train_loss == [] and bad.final_train_loss is None  # no whole epoch before it
    assert "x the first loss" in bad.diverged_reason or "nan" in bad.diverged_reason
    curve = scalars(tmp_path / bad.tb_run)["loss/train"]
    # The curve ends at the step before the divergence: no absurd or non-finite value is written.
    assert max(s for s, _ in curve) == bad.diverged_step - 1
    assert all(math.isfinite(v) and v <= 1000 * bad.first_step_loss for _, v in curve)
    assert "loss/train_epoch" not in scalars(tmp_path / bad.tb_run)


def plain_pytorch_losses(init: Path, x, y, lr: float, epochs: int, hidden) -> list[float]:
    net = SimpleRegressionNet(x.shape[1], hidden)
    state = torch.load(init, weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        loss = F.mse_loss(net(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_full_batch_sgd_on_csv_matches_plain_pytorch(tmp_path):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(64, 2, generator=gen)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.5
    csv = tmp_path / "data.csv"
    rows = ["f1,f2,target"] + [
        ",".join(f"{v:.6f}" for v in (*a, b)) for a, b in zip(x.tolist(), y.flatten().tolist())
    ]
    csv.write_text("\n".join(rows) + "\n")
    cfg = experiment(
        {"data.csv_path": str(csv), "data.val_fraction": 0.0, "data.batch_size": 64,
         "model.hidden_dims": [8], "trials.lrs": [0.1, 0.02], "trials.max_epochs": 12},
        base={},
    )  # fmt: skip
    _, results = run_fixed(cfg, tmp_path)
    data = torch.tensor([[float(v) for v in r.split(",")] for r in rows[1:]])
    for r in results:
        expected = plain_pytorch_losses(
            seed_dir(tmp_path, 0) / INIT_FILE, data[:, :2], data[:, 2:], r.lr, 12, [8]
        )
        assert r.val_loss == []
        torch.testing.assert_close(
            torch.tensor(r.train_loss), torch.tensor(expected), rtol=1e-5, atol=1e-7
        )


def test_steps_per_call_changes_speed_not_results(tmp_path, monkeypatch):
    import lr_lab.training.runner

    cfg = tiny_config()
    init_state(cfg, tmp_path / "a")
    init_state(cfg, tmp_path / "b")
    chunked = [run_trial(s) for s in fixed_specs(cfg, 0, tmp_path / "a")]
    monkeypatch.setattr(
        lr_lab.training.runner, "STEPS_PER_CALL", 1
    )  # one mini-batch per training_step
    single = [run_trial(s) for s in fixed_specs(cfg, 0, tmp_path / "b")]
    for a, b in zip(chunked, single, strict=True):
        assert (a.train_loss, a.val_loss, a.diverged_step, a.steps) == (
            b.train_loss,
            b.val_loss,
            b.diverged_step,
            b.steps,
        )


def test_trial_specs_and_results_pickle(tmp_path):
    # Trials can be shipped to worker processes: spec in, result out, both plain data.
    import pickle

    cfg = tiny_config()
    spec = fixed_specs(cfg, 0, tmp_path)[0]
    assert pickle.loads(pickle.dumps(spec)) == spec
    init_state(cfg, tmp_path)
    result = run_trial(spec)
    assert pickle.loads(pickle.dumps(result)) == result


def test_lightning_counts_every_optimizer_step(tmp_path):
    # Manual optimization as documented: trainer.global_step is the number of optimizer steps.
    cfg = tiny_config()
    _, results = run_fixed(cfg, tmp_path)
    for r in results:
        assert r.global_step == r.steps, r.name
    assert {r.steps for r in results if not r.diverged} == {3 * 4}  # 128 samples / 32, 3 epochs


@pytest.mark.parametrize("batched", [False, True])
def test_max_steps_stops_a_trial_mid_chunk(tmp_path, batched):
    from lr_lab.training.batched import run_batched

    cfg = tiny_config(trials__max_steps=6, trials__lrs=[0.05, 0.001])  # 6 of 12 steps
    init_state(cfg, tmp_path)
    specs = fixed_specs(cfg, 0, tmp_path)
    results = run_batched(specs) if batched else [run_trial(s) for s in specs]
    for r in results:
        assert r.steps == r.global_step == 6
        assert len(r.train_loss) == 2  # epoch 1 whole, epoch 2 cut at step 6
        steps = [s for s, _ in scalars(tmp_path / r.tb_run)["loss/train"]]
        assert steps == list(range(6))


def test_long_runs_are_strided_in_tensorboard(tmp_path):
    cfg = tiny_config(
        data__n_samples=5000, data__batch_size=4, trials__lrs=[0.001], trials__max_epochs=1
    )
    _, (result,) = run_fixed(cfg, tmp_path)
    assert result.steps == 1000  # 4000 training samples / 4
    steps = [s for s, _ in scalars(tmp_path / result.tb_run)["loss/train"]]
    assert steps[0] == 0 and steps == list(range(0, 1000, 1))  # 1000 points fit: stride 1
    cfg = tiny_config(
        data__n_samples=5000, data__batch_size=4, trials__lrs=[0.001], trials__max_epochs=3
    )
    from lr_lab.training.runner import log_stride

    assert log_stride(cfg.fit, 1000) == 3  # 3000 steps keep ~1000 points
    _, (long,) = run_fixed(cfg, tmp_path / "long")
    steps = [s for s, _ in scalars(tmp_path / "long" / long.tb_run)["loss/train"]]
    assert steps[0] == 0 and steps[1] == 3 and len(steps) == 1000 and steps[-1] == 2997


def test_trainer_settings_pass_through(tmp_path):
    from lightning.pytorch.accelerators import CPUAccelerator

    from lr_lab.training.trainer import make_trainer

    trainer = make_trainer(
        {"accelerator": "cpu"}, root_dir=tmp_path, callbacks=[], max_epochs=2, max_steps=5
    )
    assert isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices == 1
    assert (trainer.max_epochs, trainer.max_steps, trainer.num_sanity_val_steps) == (2, 5, 0)
    assert trainer.logger is None and not trainer.checkpoint_callback


def test_a_mini_batch_trial_replays_as_a_plain_pytorch_loop(tmp_path):
    # The README's promise for the built-in model, mini-batches included: the data module's
    # loader, the seed's init.ckpt, torch.optim, the recorded thread count: the same numbers.
    from lr_lab.training.data import RegressionDataModule

    cfg = tiny_config(trials__lrs=[0.05], trials__max_epochs=3)
    _, (result,) = run_fixed(cfg, tmp_path)
    assert result.steps == 3 * 4 and not result.batched  # 4 mini-batches of 32 per epoch
    torch.set_num_threads(result.threads)
    data = RegressionDataModule(**cfg.cfg.data.init_args, seed=0)
    net = SimpleRegressionNet(1, [16])
    state = torch.load(seed_dir(tmp_path, 0) / INIT_FILE, weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loader = data.train_dataloader()
    train, val = [], []
    for _ in range(3):
        total = count = 0
        for x, y in loader:
            loss = F.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(x), count + len(x)
        train.append(total / count)
        with torch.no_grad():
            val.append(F.mse_loss(net(data.x_val), data.y_val).item())
    assert result.train_loss == pytest.approx(train, rel=1e-6)
    assert result.val_loss == pytest.approx(val, rel=1e-6)
