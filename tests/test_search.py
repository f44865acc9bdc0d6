"""The search: candidates, rungs and smoothing on constructed numbers; a race replayed by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lr_lab.analysis.records import TrialResult
from lr_lab.search.candidates import bracket, candidates, geometric_median, grid_lr, grid_point
from lr_lab.search.race import promote, rung_epochs, smoothed, survivors, winner
from tests.conftest import TINY_ARGS, only_run_dir
from tests.test_run_folder import run_cli

# ------------------------------------------------------------------ candidates


def test_the_grid_is_fixed_quarter_decades_that_read_well():
    assert [grid_lr(k, 0.25) for k in range(-8, -3)] == [0.01, 0.0178, 0.0316, 0.0562, 0.1]
    assert grid_point(0.013, 0.25) == -8 and grid_point(0.015, 0.25) == -7  # nearest in log


def test_the_anchor_is_the_geometric_median_so_one_rule_that_misses_does_not_drag_it():
    assert geometric_median([0.01, 0.012, 1e-5]) == pytest.approx(0.01)
    assert geometric_median([0.01, 0.1]) == pytest.approx(0.01)  # the lower middle


def test_the_bracket_spans_below_and_above_the_anchor():
    assert bracket(0.0138, 0.5, 1.0, 0.25) == [0.00562, 0.01, 0.0178, 0.0316, 0.0562, 0.1, 0.178]
    assert bracket(0.01, 0.0, 0.0, 0.25) == [0.01]


def test_candidates_come_from_the_rules_or_from_the_fallback_never_from_nothing():
    found = candidates({"valley": 0.01, "minimum_div10": None}, 0.5, 0.5, 0.25)
    assert found.anchor == pytest.approx(0.01) and found.rules == {"valley": 0.01}
    assert found.lrs == [0.00316, 0.00562, 0.01, 0.0178, 0.0316] and not found.fallback
    coarse = candidates({"valley": None}, 0.5, 1.0, 0.25, finder_range=(1e-6, 1.0))
    assert coarse.anchor is None and "no trusted rule" in coarse.fallback
    assert coarse.lrs == [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0]
    assert candidates({}, 0.5, 1.0, 0.25).lrs == [1e-4, 1e-3, 0.01, 0.1, 1.0]


# ------------------------------------------------------------------ rungs and smoothing


def test_smoothing_of_a_noisy_history():
    h = [4.0, 1.0, 3.0, 2.0]
    assert smoothed(h, "last") == 2.0 and smoothed(h, "min") == 1.0
    assert smoothed(h, "mean2") == 2.5 and smoothed(h, "mean3") == 2.0
    assert smoothed(h, "ema") == pytest.approx(0.5 * 2.0 + 0.5 * (0.5 * 3.0 + 0.5 * 2.5))
    assert smoothed([], "last") is None and smoothed([1.0, math.nan], "mean2") is None
    with pytest.raises(ValueError, match="smoothing 'median'"):
        smoothed(h, "median")


def test_rung_epochs_grow_by_eta_below_the_full_budget():
    assert rung_epochs(1, 3, 3, 10) == [1, 3, 9]
    assert rung_epochs(2, 3, 3, 10) == [2, 6]  # 18 would not be a short run
    assert rung_epochs(2, 2, 1, 10) == [2] and rung_epochs(5, 3, 2, 3) == [3]


def test_the_best_fraction_goes_on_and_a_diverged_one_never():
    assert survivors(7, 3) == 3 and survivors(2, 3) == 1 and survivors(1, 2) == 1
    scores = [0.5, None, 0.2, 0.3, 0.2]
    assert promote(scores, 2, lambda v: v) == [2, 4]  # a tie: both; in LR order
    assert promote(scores, 3, lambda v: -v) == [0, 2, 3]  # higher is better
    assert winner(scores, lambda v: v) == 2  # a tie goes to the smaller LR
    assert winner([None, None], lambda v: v) is None


# ------------------------------------------------------------------ a race in a run


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    args = [*TINY_ARGS, "--trials.lrs", "[]", "--trials.max_epochs", "4",
            "--search.first_epochs", "1", "--search.rungs", "2", "--search.eta", "2",
            "--finder.verify", "false", "--out", str(out)]  # fmt: skip
    code, printed, err = run_cli(args)
    assert code == 0, err
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text()), printed


def test_a_grid_free_run_answers_with_the_search_and_says_what_it_cost(searched):
    run_dir, res, printed = searched
    (search,) = res["searches"]
    rec = res["comparison"]["recommendation"]
    assert rec["source"] == "search" and rec["lr"] == search["lr"]
    assert [r["epochs"] for r in search["rungs"]] == [1, 2]
    assert len(search["rungs"][1]["lrs"]) == math.ceil(len(search["candidates"]) / 2)
    race = [t for t in res["trials"] if t["role"] == "race"]
    assert rec["search_steps"] == len(res["finders"][0]["lr"]) + sum(t["steps"] for t in race)
    final = next(t for t in res["trials"] if f"seed{t['seed']}/{t['name']}" == search["trial"])
    assert final["role"] == "search" and len(final["val_loss"]) == 4
    assert rec["grid_steps"] == 13 * final["steps"]
    assert "Recommendation: LR" in printed and "of a 13-LR grid" in printed
    assert "No grid of fixed LRs" in printed


def test_the_race_promotes_the_best_smoothed_scores(searched):
    _, res, _ = searched
    (search,) = res["searches"]
    race = {(t["rung"], t["lr"]): t for t in res["trials"] if t["role"] == "race"}
    for r, rung in enumerate(search["rungs"]):
        scores = [sum(race[(r, lr)]["val_loss"][-2:]) / len(race[(r, lr)]["val_loss"][-2:])
                  for lr in rung["lrs"]]  # fmt: skip
        assert rung["scores"] == pytest.approx(scores)
        keep = sorted(range(len(scores)), key=lambda i: scores[i])[: len(rung["kept"])]
        assert rung["kept"] == [rung["lrs"][i] for i in sorted(keep)]


def test_a_race_trial_is_the_first_epochs_of_the_full_trial_replayed_by_hand(searched):
    # The README's replay, for a race trial: the full budget's loop, stopped after its epochs.
    from lr_lab.training.data import RegressionDataModule
    from lr_lab.training.model import SimpleRegressionNet

    run_dir, res, _ = searched
    trial = next(t for t in res["trials"] if t["role"] == "race" and t["rung"] == 1)
    torch.set_num_threads(trial["threads"])
    data = RegressionDataModule(**res["config"]["data"]["init_args"], seed=0)
    net = SimpleRegressionNet(1, [16])
    state = torch.load(run_dir / "seed0/init.ckpt", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    opt = torch.optim.SGD(net.parameters(), lr=trial["lr"])
    loader, val = data.train_dataloader(), []
    for _ in range(trial["stop_epochs"]):
        for x, y in loader:
            loss = F.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val.append(F.mse_loss(net(data.x_val), data.y_val).item())
    assert trial["val_loss"] == pytest.approx(val, rel=1e-6)


def test_an_edited_race_score_is_refused_on_resume(searched, tmp_path):
    import shutil

    run_dir, res, _ = searched
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    data = json.loads((copy / "results.json").read_text())
    # The loser of rung 0 now looks best: it would have gone on, so rung 1 is not its plan.
    rung0 = [t for t in data["trials"] if t["role"] == "race" and t["rung"] == 0]
    kept = set(data["searches"][0]["rungs"][0]["kept"])
    loser = next(t for t in rung0 if t["lr"] not in kept)
    loser["val_loss"] = [1e-9] * len(loser["val_loss"])
    data["status"] = "interrupted"
    (copy / "results.json").write_text(json.dumps(data))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2 and "is not in this run's plan" in err


def test_trial_results_carry_their_rung():
    t = TrialResult("x", "race", 0.1, 0, rung=1, stop_epochs=2)
    assert (t.rung, t.stop_epochs) == (1, 2)
