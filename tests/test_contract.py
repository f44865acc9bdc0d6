"""A user's module that breaks the contract only a fit can check: one line, exit 2, at that step.

Each case would otherwise make the comparison silently wrong (a hard-coded LR ranks identical
trials; a metric from training_step is ranked as validation) or lose the report.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import only_run_dir
from tests.tb import scalars as read_scalars
from tests.test_run_folder import run_cli
from tests.test_user_modules import USER_ARGS

BROKEN = {
    "LogsMetricInTraining": "'val_loss' was not logged by validation in epoch 0",
    "LogsMetricOnce": "'val_loss' was not logged by validation in epoch 1",
    "HardCodedLR": "did not use the learning rate lr_lab set (lr = 0.02; the optimizer has lr 0.05)",
    "NoOptimizer": "configure_optimizers returned no optimizer",
    "TwoOptimizers": "configure_optimizers returned several optimizers",
    "PerSampleLoss": "training_step returned a tensor of shape (16,) at step 0",
    "DictWithoutLoss": "the 'loss' key needs to be present",
    "LayerInSetup": "made head.bias, head.weight after __init__",
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_contract_stops_the_run_with_one_line(name, tmp_path):
    args = [*USER_ARGS, "--model.class_path", f"tests.user_modules.{name}"]
    code, _, err = run_cli([*args, "--trials.lrs", "[0.02, 0.01]", "--out", str(tmp_path)])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and BROKEN[name] in lines[0], err
    results = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert results["status"] == "failed" and results["trials"] == []


def test_a_data_module_without_batches_is_one_line(tmp_path):
    args = [*USER_ARGS, "--data.class_path", "tests.user_modules.NoBatches"]
    code, _, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 2
    assert "NoBatches.train_dataloader() gave no batches" in err.strip().splitlines()[-1]


def test_a_non_finite_validation_metric_is_a_divergence_and_the_report_is_drawn(tmp_path):
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.InfiniteValidation"]
    code, printed, err = run_cli([*args, "--trials.lrs", "[0.05, 0.08]", "--out", str(tmp_path)])
    assert code == 0, err
    run_dir = only_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "complete"
    trial = next(t for t in results["trials"] if t["lr"] == 0.08)
    assert trial["diverged"] and trial["diverged_reason"].startswith("val_loss inf after epoch 0")
    assert trial["val_loss"] == [] and trial["final_loss"] is None
    for png in ("loss_curves.png", "lr_finder.png", "lr_sweep.png"):
        assert (run_dir / png).stat().st_size > 10_000
    # Nothing non-finite reaches TensorBoard: the trial's curves end before its divergence.
    scalars = read_scalars(run_dir / "seed0" / trial["name"])
    assert "loss/val" not in scalars and "loss/train_epoch" not in scalars
    assert all(math.isfinite(v) for _, v in scalars["loss/train"])
    assert max(s for s, _ in scalars["loss/train"]) < trial["diverged_step"]


def test_a_record_with_a_non_finite_loss_is_trained_again_on_resume(tmp_path):
    # What an earlier lr_lab wrote for such a trial (no divergence, a null val loss) and then could
    # not draw: --resume trains it again and finishes the report.
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.InfiniteValidation"]
    assert run_cli([*args, "--trials.lrs", "[0.05, 0.08]", "--out", str(tmp_path)])[0] == 0
    run_dir = only_run_dir(tmp_path)
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    trial = next(t for t in data["trials"] if t["lr"] == 0.08)
    expected = dict(trial)
    trial.update(diverged=False, diverged_step=None, diverged_reason="", val_loss=[1.0, None])
    data["status"], data["pending"] = "failed", ["report"]
    path.write_text(json.dumps(data))
    (run_dir / "lr_sweep.png").unlink()
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    again = json.loads(path.read_text())
    retrained = next(t for t in again["trials"] if t["lr"] == 0.08)
    keys = ("diverged", "diverged_step", "diverged_reason", "train_loss", "val_loss")
    assert {k: retrained[k] for k in keys} == {k: expected[k] for k in keys}
    assert again["status"] == "complete" and (run_dir / "lr_sweep.png").is_file()


def test_no_rule_the_study_trusts_means_no_recommendation(tmp_path):
    args = [*USER_ARGS, "--finder.rules", "[lightning, steep_log]", "--search.enabled", "false",
            "--out", str(tmp_path)]  # fmt: skip
    code, printed, err = run_cli(args)
    assert code == 0, err
    results = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert results["comparison"]["recommendation"] is None
    assert "No recommendation: no rule that lr_lab's study trusts" in printed
    assert "Recommendation: LR" not in printed
