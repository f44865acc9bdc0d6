"""The search: candidates, rungs and smoothing on constructed numbers; a race replayed by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from lr_lab.analysis.records import TrialResult
from lr_lab.search.candidates import bracket, candidates, geometric_mean, grid_lr, grid_point
from lr_lab.search.race import promote, run_race, smoothed, survivors, undecided
from tests.conftest import TINY_ARGS, only_run_dir
from tests.test_run_folder import run_cli

# ------------------------------------------------------------------ candidates


def test_the_grid_is_fixed_quarter_decades_that_read_well():
    assert [grid_lr(k, 0.25) for k in range(-8, -3)] == [0.01, 0.0178, 0.0316, 0.0562, 0.1]
    assert grid_point(0.013, 0.25) == -8 and grid_point(0.015, 0.25) == -7  # nearest in log


def test_the_anchor_is_the_geometric_mean_of_the_rules():
    assert geometric_mean([0.01, 0.1]) == pytest.approx(0.0316, rel=1e-3)
    assert geometric_mean([0.01, 0.01, 0.01, 1e-5]) == pytest.approx(10**-2.75)


def test_the_bracket_spans_below_and_above_the_anchor():
    assert bracket(0.0138, 0.5, 1.0, 0.25) == [0.00562, 0.01, 0.0178, 0.0316, 0.0562, 0.1, 0.178]
    assert bracket(0.01, 0.0, 0.0, 0.25) == [0.01]


def test_candidates_come_from_the_rules_or_from_the_fallback_never_from_nothing():
    found = candidates({"valley": 0.01, "minimum_div10": None}, 0.5, 0.5, 0.25)
    assert found.anchor == pytest.approx(0.01) and found.rules == {"valley": 0.01}
    assert found.lrs == [0.00316, 0.00562, 0.01, 0.0178, 0.0316] and not found.fallback
    coarse = candidates({"valley": None}, 0.5, 1.0, 0.25, finder_range=(1e-6, 1.0))
    assert coarse.anchor is None and "no trusted rule" in coarse.fallback
    half = [1e-4, 0.000316, 1e-3, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0]  # half decades
    assert coarse.lrs == half and candidates({}, 0.5, 1.0, 0.25).lrs == half
    # Within the finder's range, where it overlaps
    assert candidates({}, 0.5, 1.0, 0.25, finder_range=(1e-8, 1e-2)).lrs == half[:5]


# ------------------------------------------------------------------ rungs and smoothing


def test_smoothing_of_a_noisy_history():
    h = [4.0, 1.0, 3.0, 2.0]
    assert smoothed(h, "last") == 2.0 and smoothed(h, "min") == 1.0
    assert smoothed(h, "mean2") == 2.5 and smoothed(h, "mean3") == 2.0
    assert smoothed(h, "ema") == pytest.approx(0.5 * 2.0 + 0.5 * (0.5 * 3.0 + 0.5 * 2.5))
    assert smoothed([], "last") is None and smoothed([1.0, math.nan], "mean2") is None
    with pytest.raises(ValueError, match="smoothing 'median'"):
        smoothed(h, "median")


def test_the_best_fraction_goes_on_and_a_diverged_one_never():
    assert survivors(7, 3) == 2 and survivors(6, 3) == 2 and survivors(2, 3) == 1
    scores = [0.5, None, 0.2, 0.3, 0.2]
    assert promote(scores, 2, lambda v: v) == [2, 4]  # a tie: both; in LR order
    assert promote(scores, 3, lambda v: -v) == [0, 2, 3]  # higher is better
    assert promote(scores, 1, lambda v: v) == [2]  # a tie goes to the smaller LR
    assert promote([None, None], 1, lambda v: v) == []


def curves(table: dict[float, list[float]]):
    """scores_of for run_race: each LR's loss per epoch, scored as the last epoch."""
    asked = []

    def scores_of(lrs, epochs, index):
        asked.append((list(lrs), epochs, index))
        return [None if math.isinf(table[lr][epochs - 1]) else table[lr][epochs - 1]
                for lr in lrs]  # fmt: skip

    return scores_of, asked


def test_a_race_cuts_to_the_best_third_then_to_one():
    table = {lr: [10 * abs(math.log10(lr) + 2) + e for e in (3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0, 0)]
             for lr in (1e-4, 1e-3, 1e-2, 1e-1, 1, 10)}  # fmt: skip
    scores_of, asked = curves(table)
    race = run_race(sorted(table), 1, 3, 2, 0.05, 10, "min", scores_of)
    assert race.winner == 1e-2 and not race.failed
    assert [(len(lrs), e) for lrs, e, _ in asked] == [(6, 1), (2, 3)]
    assert race.rungs[0].kept == [1e-3, 1e-2] and race.rungs[1].kept == [1e-2]


def test_an_undecided_first_rung_trains_twice_as_long_before_any_cut():
    # Nothing has learned after 1 or 2 epochs (every loss within 5% of the best): extend.
    flat = {lr: [1.0, 0.99, 0.5 + lr, 0.4 + lr] for lr in (0.01, 0.1, 0.3)}
    flat[0.3] = [1.0, 1.0, math.inf, math.inf]  # diverges in epoch 3
    scores_of, asked = curves(flat)
    race = run_race(sorted(flat), 1, 3, 2, 0.05, 8, "min", scores_of)
    assert [e for _, e, _ in asked] == [1, 2, 4]
    assert [r.extended for r in race.rungs] == [True, True, False]
    assert race.winner == 0.01 and race.rungs[-1].lrs == [0.01, 0.1, 0.3]
    assert undecided([1.0, 1.04, None], 0.05) and not undecided([1.0, 1.2, 1.3], 0.05)
    assert not undecided([1.0, 1.0], 0.0) and not undecided([1.0, None], 0.05)
    # Without extension the first rung decides, even on noise.
    assert run_race(sorted(flat), 1, 3, 2, 0.0, 8, "min", curves(flat)[0]).rungs[0].epochs == 1


def test_a_race_where_everything_diverged_has_no_winner_and_says_so():
    table = {lr: [math.inf] for lr in (0.1, 1.0)}
    race = run_race(sorted(table), 1, 3, 2, 0.05, 4, "min", curves(table)[0])
    assert race.winner is None and "every candidate diverged in rung 0" in race.failed


# ------------------------------------------------------------------ a race in a run


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    args = [*TINY_ARGS, "--trials.lrs", "[]", "--trials.max_epochs", "4",
            "--search.first_epochs", "1", "--search.rungs", "2", "--search.eta", "2",
            "--search.extend", "0", "--finder.verify", "false", "--out", str(out)]  # fmt: skip
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
    assert len(search["rungs"][1]["lrs"]) == len(search["candidates"]) // 2
    race = [t for t in res["trials"] if t["role"] == "race"]
    assert rec["search_steps"] == len(res["finders"][0]["lr"]) + sum(t["steps"] for t in race)
    final = next(t for t in res["trials"] if f"seed{t['seed']}/{t['name']}" == search["trial"])
    assert final["role"] == "search" and len(final["val_loss"]) == 4
    assert rec["grid_steps"] == 13 * final["steps"]
    assert "Recommendation: LR" in printed and "of a 13-LR grid" in printed
    assert "No grid of fixed LRs" in printed
    # Nothing to compare with: the table has no "vs best fixed" column of dashes, and the finder's
    # picture speaks of no fixed-LR bands.
    header = next(line for line in printed.splitlines() if line.startswith("rank"))
    assert "final val loss" in header and "vs best fixed" not in header


def test_the_race_promotes_the_best_smoothed_scores(searched):
    _, res, _ = searched
    (search,) = res["searches"]
    race = {(t["rung"], t["lr"]): t for t in res["trials"] if t["role"] == "race"}
    for r, rung in enumerate(search["rungs"]):
        scores = [smoothed(race[(r, lr)]["val_loss"], "ema") for lr in rung["lrs"]]
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
