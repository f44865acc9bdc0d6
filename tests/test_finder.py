"""Lightning's finder from init.ckpt: its curve, the raw and corrected curves, weights restored."""

from __future__ import annotations

import math

import pytest
import torch

from lr_lab.analysis.records import INIT_FILE, seed_dir
from lr_lab.experiment.orchestrate import prepare_initial_state
from lr_lab.finder.lr_find import corrected_curve, lightning_curve, run_finder
from lr_lab.training.problem import Problem
from lr_lab.training.runner import run_trial
from tests.conftest import fixed_specs, tiny_config
from tests.tb import scalars


@pytest.fixture
def finder_run(tmp_path, monkeypatch):
    """A finder run, and the module it searched with (captured as it is built)."""
    monkeypatch.chdir(tmp_path)  # a stray .lr_find_*.ckpt in the working directory would show
    cfg = tiny_config()
    folder = seed_dir(tmp_path / "run", 0)
    sha = prepare_initial_state(cfg.problem, 0, folder, None, None)
    built = []
    original = Problem.make_model

    def capture(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(Problem, "make_model", capture)
    result = run_finder(cfg.problem, cfg.fit, cfg.cfg.finder, 0, folder / INIT_FILE, folder)
    return cfg, folder, sha, result, built[0]


def test_finder_restores_the_initial_weights(finder_run):
    _, folder, sha, result, module = finder_run
    # Checked here against the file itself, not against run_finder's own bookkeeping.
    saved = torch.load(folder / INIT_FILE, weights_only=True)["state_dict"]
    state = module.state_dict()
    assert set(state) == set(saved)
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    assert result.init_sha256 == sha


def test_finder_curve_and_no_leftover_checkpoint(finder_run, tmp_path):
    cfg, _, _, result, _ = finder_run
    assert len(result.lr) == len(result.loss) == cfg.cfg.finder.num_training  # 30: nothing exploded
    assert result.lr == sorted(result.lr) and math.isclose(result.lr[0], cfg.cfg.finder.min_lr)
    ratio = (cfg.cfg.finder.max_lr / cfg.cfg.finder.min_lr) ** (1 / cfg.cfg.finder.num_training)
    # Exponential growth; Lightning's scheduler jumps from min_lr straight to min_lr * ratio**2.
    assert result.lr[2] / result.lr[1] == pytest.approx(ratio)
    assert result.suggestion is not None and result.lightning_version
    assert [p for p in tmp_path.rglob("*") if "lr_find" in p.name] == []


def test_raw_loss_is_what_lightning_smoothed(finder_run):
    _, _, _, result, _ = finder_run
    # Lightning's own curve, recomputed from the raw losses the lab recorded: the same numbers,
    # so the raw curve is the loss of each step Lightning saw.
    torch.testing.assert_close(
        torch.tensor(lightning_curve(result.raw_loss)), torch.tensor(result.loss), rtol=1e-6, atol=0
    )
    assert result.corrected_loss == corrected_curve(result.raw_loss)
    # Lightning #14167: its first point is about half the first loss; the corrected one is it.
    assert result.corrected_loss[0] == pytest.approx(result.raw_loss[0], rel=1e-12)
    assert result.loss[0] == pytest.approx(0.02 / (1 - 0.98**2) * result.raw_loss[0], rel=1e-6)


def test_finder_and_trials_take_the_same_first_steps(finder_run, tmp_path):
    # The finder (automatic optimization) and a trial (the chunked manual path) at the finder's
    # first LR: same weights, same first two batches, same update, so the same two losses.
    cfg, folder, _, result, _ = finder_run
    trial_cfg = tiny_config(trials__lrs=[cfg.cfg.finder.min_lr], trials__max_epochs=1)
    spec = fixed_specs(trial_cfg, 0, folder.parent)[0]
    trial = run_trial(spec)
    curve = [v for _, v in scalars(folder.parent / trial.tb_run)["loss/train"]]
    assert trial.first_batch_sha256 == result.first_batch_sha256
    torch.testing.assert_close(
        torch.tensor(curve[:2]), torch.tensor(result.raw_loss[:2]), rtol=1e-6, atol=0
    )


def test_finder_that_stops_early_is_flagged(tmp_path):
    cfg = tiny_config(finder__max_lr=1e4, finder__num_training=60, finder__early_stop_threshold=1.5)
    folder = seed_dir(tmp_path, 0)
    prepare_initial_state(cfg.problem, 0, folder, None, None)
    result = run_finder(cfg.problem, cfg.fit, cfg.cfg.finder, 0, folder / INIT_FILE, folder)
    assert result.stopped_early and len(result.loss) < 60
    assert len(result.raw_loss) == len(result.loss) == len(result.corrected_loss)
    assert any("stopped early" in flag for flag in result.flags())


def test_corrected_curve_by_hand():
    raw = [4.0, 2.0, None, 1.0]
    b = 0.98
    a1 = 0.02 * 4.0
    a2 = b * a1 + 0.02 * 2.0
    a3 = b * a2 + 0.02 * 1.0
    corrected = corrected_curve(raw)
    assert corrected[0] == pytest.approx(4.0)
    assert corrected[1] == pytest.approx(a2 / (1 - b**2))
    assert math.isnan(corrected[2])  # a step without a loss leaves the average alone
    assert corrected[3] == pytest.approx(a3 / (1 - b**3))
    assert lightning_curve(raw)[0] == pytest.approx(a1 / (1 - b**2))
