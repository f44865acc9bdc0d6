"""A user's own LightningModule and DataModule, named by class_path: the whole lab works on them."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

import lr_lab
from tests.conftest import only_run_dir
from tests.test_robustness import metrics
from tests.test_run_folder import run_cli
from tests.user_modules import TinyData, TinyNet

USER_ARGS = [
    "--model.class_path", "tests.user_modules.TinyNet",
    "--model.init_args.hidden", "8",
    "--data.class_path", "tests.user_modules.TinyData",
    "--trials.lrs", "[0.05, 0.01, 50.0]",
    "--trials.max_epochs", "3",
    "--finder.num_training", "30",
]  # fmt: skip


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("user")
    code, printed, err = run_cli([*USER_ARGS, "--out", str(out)])
    assert code == 0, err
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text()), printed


def test_user_module_runs_end_to_end_on_the_same_footing(user_run):
    run_dir, res, printed = user_run
    assert res["status"] == "complete" and res["metric"] == "val_loss"
    assert res["config"]["model"]["class_path"] == "tests.user_modules.TinyNet"
    sha = res["init_sha256"]["0"]
    trials = res["trials"]
    assert {t["role"] for t in trials} >= {"fixed", "finder_check", "race"}
    # Every trial and the finder started from init.ckpt and saw the same first batch.
    assert {t["init_sha256"] for t in trials} == {sha}
    batches = {t["first_batch_sha256"] for t in trials} | {res["finders"][0]["first_batch_sha256"]}
    assert len(batches) == 1 and "" not in batches
    assert res["comparison"]["order_differs"] == []
    by_lr = {t["lr"]: t for t in trials}
    assert by_lr[50.0]["diverged"] and by_lr[50.0]["diverged_reason"]
    good = by_lr[0.05]
    assert len(good["train_loss"]) == len(good["val_loss"]) == 3
    assert good["global_step"] == good["steps"] == 3 * 5  # 72 samples / 16 = 5 steps per epoch
    assert "Best fixed LR" in printed and "rule lightning" in printed
    for png in ("loss_curves.png", "lr_finder.png", "lr_sweep.png"):
        assert (run_dir / png).stat().st_size > 10_000


def replay(run_dir: Path, trial: dict, epochs: int, seed: int | None = None,
           optimizer: type | None = None, callbacks: tuple = ()):  # fmt: skip
    """The README's recipe: the trial again, with plain Lightning from init.ckpt (a baseline:
    ``optimizer`` at its defaults over the module's parameters, with its ``callbacks``)."""
    seed = trial["seed"] if seed is None else seed
    module = TinyNet(hidden=8)
    state = torch.load(run_dir / f"seed{trial['seed']}/init.ckpt", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.lr = trial["lr"]
    if optimizer is not None:
        module.configure_optimizers = lambda: optimizer(module.parameters())
    L.seed_everything(seed)
    datamodule = TinyData()
    L.seed_everything(seed)
    train, val = [], []

    class Epochs(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            train.append(float(trainer.callback_metrics["train_loss"]))
            val.append(float(trainer.callback_metrics["val_loss"]))

    trainer = L.Trainer(
        max_epochs=epochs, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[*callbacks, Epochs()],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return train, val


def test_a_trial_replays_by_hand_with_plain_lightning(user_run):
    run_dir, res, _ = user_run
    replayed = 0
    for trial in res["trials"]:
        if trial["diverged"]:
            continue
        # A race trial is the first epochs of the full run at its LR: the same recipe, cut.
        train, val = replay(run_dir, trial, epochs=3)
        n = len(trial["train_loss"])
        torch.testing.assert_close(
            torch.tensor(train[:n]), torch.tensor(trial["train_loss"]), rtol=1e-5, atol=0
        )
        torch.testing.assert_close(
            torch.tensor(val[:n]), torch.tensor(trial["val_loss"]), rtol=1e-5, atol=0
        )
        replayed += 1
    assert replayed >= 3


def test_replay_needs_the_seed(user_run):
    # The recipe's seeding matters (dropout, shuffling): another seed gives other numbers.
    run_dir, res, _ = user_run
    trial = next(t for t in res["trials"] if not t["diverged"])
    other, _ = replay(run_dir, trial, epochs=1, seed=1)
    assert other[0] != pytest.approx(trial["train_loss"][0], rel=1e-3)


CONTRACT = {
    "not importable": (["--model.class_path", "nowhere.Net"], "cannot import nowhere", False),
    "not a module": (["--model.class_path", "torch.nn.Linear"], "not a LightningModule", False),
    "unknown init arg": (["--model.init_args.width", "3"], "has no argument 'width'", False),
    "no lr attribute": (
        ["--model.class_path", "tests.user_modules.NoLR"],
        "no learning-rate attribute",
        False,
    ),
    "data not importable": (
        ["--data.class_path", "tests.user_modules.Nope"],
        "has no 'Nope'",
        False,
    ),
    "batched user module": (["--trials.batched", "true"], "trials.batched = True", False),
    "built-in key with class": (
        ["--model.hidden_dims", "[4]"],
        "TinyNet has no argument 'hidden_dims'",
        False,
    ),
    "training_step returns None": (
        ["--model.class_path", "tests.user_modules.ReturnsNone"],
        "training_step returned None at step 0",
        True,
    ),
    "metric never logged": (
        ["--model.class_path", "tests.user_modules.LogsOtherMetric"],
        "metric = 'val_loss' was not logged by validation",
        True,
    ),
}


@pytest.mark.parametrize("case", list(CONTRACT))
def test_contract_violations_are_one_line(case, tmp_path):
    args, fragment, makes_folder = CONTRACT[case]
    code, out, err = run_cli([*USER_ARGS, *args, "--out", str(tmp_path)])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lr-lab: error: "), err
    assert fragment in lines[0] and "Traceback" not in err
    folders = list(tmp_path.iterdir())
    assert bool(folders) == makes_folder
    if makes_folder:  # stopped at the step that showed it, with a truthful status
        res = json.loads((folders[0] / "results.json").read_text())
        assert res["status"] == "failed" and fragment in res["error"]


def test_an_exception_in_user_code_is_one_line_with_the_trial(tmp_path):
    args = ["--model.class_path", "tests.user_modules.RaisesInStep"]
    code, _, err = run_cli([*USER_ARGS, *args, "--out", str(tmp_path)])
    assert code == 1
    assert err.count("\n") == 1 and "seed0/0870_lr=0.05: ValueError: bad batch" in err
    run_dir = only_run_dir(tmp_path)
    assert "Traceback" in (run_dir / "error.log").read_text()  # the details are kept


def test_data_order_that_ignores_the_seed_is_flagged(tmp_path):
    args = ["--data.class_path", "tests.user_modules.UnseededData", "--finder.enabled", "false"]
    code, printed, _ = run_cli([*USER_ARGS, *args, "--out", str(tmp_path)])
    assert code == 0
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert len({t["first_batch_sha256"] for t in res["trials"]}) == 3
    assert res["comparison"]["order_differs"] == [0]
    assert "did not all see the same first batch" in printed


def test_interrupt_and_resume_of_a_user_module_run(tmp_path, monkeypatch, user_run):
    original = TinyNet.training_step

    def signal_mid_trial(self, batch, batch_idx):
        if self.lr == 0.01 and self.global_step == 4:  # the second trial, mid-way
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TinyNet, "training_step", signal_mid_trial)
    code, _, err = run_cli([*USER_ARGS, "--out", str(tmp_path)])
    assert code == 130 and "--resume" in err
    run_dir = only_run_dir(tmp_path)
    partial = json.loads((run_dir / "results.json").read_text())
    assert partial["status"] == "interrupted" and len(partial["trials"]) == 1
    assert "seed0/0800_lr=0.01" in partial["pending"]
    monkeypatch.setattr(TinyNet, "training_step", original)
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    resumed = json.loads((run_dir / "results.json").read_text())
    assert metrics(resumed) == metrics(user_run[1])


def test_python_api_runs_from_a_dict(tmp_path):
    config = {
        "model": {"class_path": "tests.user_modules.TinyNet"},
        "data": {"class_path": "tests.user_modules.TinyData"},
        "trials": {"lrs": [0.05], "max_epochs": 2},
        "finder": {"enabled": False},
    }
    results = lr_lab.run(config, out=tmp_path, overrides={"trials.max_epochs": 1})
    assert results.status == "complete" and len(results.trials) == 1
    assert len(results.trials[0].train_loss) == 1  # the override won
    on_disk = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert on_disk["trials"][0]["train_loss"] == results.trials[0].train_loss
    with pytest.raises(lr_lab.UsageError, match="trials.max_epochs = 0"):
        lr_lab.run(config, out=tmp_path, overrides={"trials.max_epochs": 0})
