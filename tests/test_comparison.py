from dataclasses import asdict

import pytest

from lr_lab.analysis.comparison import compare
from lr_lab.analysis.recommendation import TRUSTED_RULES, recommend
from lr_lab.analysis.records import FinderResult, TrialResult
from lr_lab.analysis.results import RunResults


def trial(name, lr, losses, role="fixed", seed=0, diverged=False, rules=()):
    return TrialResult(
        name=name, role=role, lr=lr, seed=seed, rules=list(rules), train_loss=losses,
        final_train_loss=losses[-1], diverged=diverged,
    )  # fmt: skip


def test_ranking_rules_and_recommendation():
    results = RunResults(
        seeds=[0],
        trials=[
            trial("lr=0.1", 0.1, [1.0, 0.5, 0.2]),
            trial("lr=1", 1.0, [1.0, float("nan")], diverged=True),
            trial("lr=0.001", 0.001, [1.0, 0.95, 0.9]),
            trial("check", 0.03, [1.0, 0.3, 0.1], role="finder_check", rules=("valley", "steep_log")),
            trial("check2", 1e-5, [1.0, 0.99, 0.98], role="finder_check", rules=("lightning",)),
        ],
        finders=[FinderResult(seed=0, rules={"lightning": 1e-5, "valley": 0.03, "steep_log": 0.03, "minimum_div10": None},
                              rule_notes={"minimum_div10": "the loss curve is flat"})],
    )  # fmt: skip
    comp = compare(results, ["lightning", "valley", "steep_log", "minimum_div10"])
    assert comp.metric == "train_loss"
    assert (comp.best_fixed.lr, comp.best_fixed.loss) == (0.1, 0.2)
    rules = comp.rules
    # Two rules that chose the same LR share one trial and one rank.
    assert rules["valley"].rank == rules["steep_log"].rank == 1
    assert rules["valley"].ratio_to_best_fixed == pytest.approx(0.5)
    assert comp.lightning.lr == 1e-5 and comp.lightning.rank == 4
    assert comp.lightning.ratio_to_best_fixed == pytest.approx(0.98 / 0.2)
    assert rules["minimum_div10"].lr is None and "flat" in rules["minimum_div10"].note
    lowest = {"lr": 0.03, "lr_min": 0.03, "lr_max": 0.03, "loss": 0.1,
              "source": "rule valley+steep_log", "rank": 1, "study_hit_rate": None,
              "search_steps": None, "grid_steps": None}  # fmt: skip
    assert asdict(comp.lowest) == lowest
    # The study found valley, steep_log and Lightning's suggestion right less than half the
    # time, so none of them is recommended; minimum_div10 (the one that is) did not read an LR.
    assert comp.recommendation is None
    rules["minimum_div10"] = rules["valley"]  # as if it had chosen valley's LR and trial
    rec = recommend(results, comp.rows, rules)
    assert (
        rec.source == "rule minimum_div10" and rec.study_hit_rate == TRUSTED_RULES["minimum_div10"]
    )
    as_json = comp.to_json()  # what results.json holds
    assert as_json["suggested_lr"] == 1e-5 and as_json["lowest"] == lowest
    ranks = {r.label: r.rank for r in comp.rows}
    assert ranks == {
        "0.1": 2,
        "0.001": 3,
        "1": None,
        "lightning": 4,
        "valley": 1,
        "steep_log": 1,
        "minimum_div10": None,
    }
    verdicts = {t.name: t.verdict for t in results.trials}
    assert verdicts == {
        "lr=0.1": "good",
        "lr=1": "diverged",
        "lr=0.001": "slow",
        "check": "best",
        "check2": "slow",
    }
    assert comp.n_ranked == 4  # the diverged LR and the missing rule are not ranked


def test_diverged_seed_ranks_row_last_and_validation_is_preferred():
    t = [
        trial("lr=0.1", 0.1, [1.0, 0.5], seed=0),
        trial("lr=0.1", 0.1, [1.0, float("inf")], seed=1, diverged=True),
        trial("lr=0.01", 0.01, [1.0, 0.9], seed=0),
        trial("lr=0.01", 0.01, [1.0, 0.8], seed=1),
    ]
    for x in t:
        x.val_loss = [v * 2 for v in x.train_loss]
        x.final_val_loss = x.val_loss[-1]
    comp = compare(RunResults(seeds=[0, 1], trials=t), [])
    assert comp.metric == "val_loss"
    rows = {r.label: r for r in comp.rows}
    assert rows["0.01"].rank == 1 and rows["0.01"].mean == pytest.approx(1.7)
    assert rows["0.01"].spread == pytest.approx((1.6, 1.8))
    assert rows["0.1"].rank is None and rows["0.1"].diverged_seeds == 1
    assert rows["0.1"].verdict == "diverged"


def test_unverified_suggestions_are_still_reported():
    results = RunResults(
        seeds=[0, 1],
        trials=[trial("lr=0.1", 0.1, [1.0, 0.5], seed=s) for s in (0, 1)],
        finders=[
            FinderResult(seed=0, rules={"lightning": 1e-5, "valley": 0.02}),
            FinderResult(
                seed=1, rules={"lightning": 3e-5, "valley": None}, rule_notes={"valley": "flat"}
            ),
        ],
    )
    comp = compare(results, ["lightning", "valley"])
    light = comp.rules["lightning"]
    # The lower median: always a value some seed actually suggested.
    assert (light.lr, light.lr_min, light.lr_max) == (1e-5, 1e-5, 3e-5)
    assert light.verdict == "not verified" and light.rank is None
    assert comp.to_json()["suggested_lr"] == 1e-5
    valley = comp.rules["valley"]
    assert valley.lr == 0.02 and len(valley.lrs) == 1 and valley.note == "seed 1: flat"


def test_a_rule_missing_for_some_seeds_is_not_ranked_against_full_rows():
    results = RunResults(
        seeds=[0, 1],
        trials=[
            *(trial("lr=0.1", 0.1, [1.0, 0.5], seed=s) for s in (0, 1)),
            trial("check", 0.05, [1.0, 0.1], role="finder_check", seed=1, rules=("valley",)),
        ],
        finders=[
            FinderResult(seed=0, rules={"valley": None}, rule_notes={"valley": "flat"}),
            FinderResult(seed=1, rules={"valley": 0.05}),
        ],
    )
    comp = compare(results, ["valley"])
    valley = comp.rules["valley"]
    # Better than the grid on its one seed, but that is not a mean over both seeds.
    assert valley.mean == 0.1 and valley.rank is None and valley.ratio_to_best_fixed is None
    assert valley.verdict == "partial (1/2 seeds)" and len(valley.trial_names) == 1
    assert comp.lowest.source == "grid" and comp.lowest.lr == 0.1
    assert comp.recommendation is None  # valley covers one seed of two: not trusted here
