"""The peers (``baselines``): LR-free optimizers and Optuna on the same footing as the search."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

import lr_lab
from lr_lab.config.baselines import OPTIMIZERS
from lr_lab.errors import ResultsError, UsageError
from lr_lab.training.baselines import ScheduleFreeModes
from tests.conftest import only_run_dir
from tests.test_user_modules import replay

# pip install -e ".[peers]" (CI installs it): the optimizers and Optuna the peers train with
pytest.importorskip("optuna")
pytest.importorskip("prodigyopt")

LR_FREE = list(OPTIMIZERS)
CONFIG = {
    "model": {"class_path": "tests.user_modules.TinyNet", "init_args": {"hidden": 8}},
    "data": {"class_path": "tests.user_modules.TinyData"},
    "trials": {"lrs": [0.003, 0.03, 0.3], "max_epochs": 4},
    "finder": {"num_training": 30},
}


@pytest.fixture(scope="module")
def peers_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("peers")
    lr_lab.run({**CONFIG, "baselines": [*LR_FREE, "optuna"]}, out=out, quiet=True)
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_each_lr_free_optimizer_trains_from_init_ckpt_and_replays_by_hand(peers_run):
    run_dir, res = peers_run
    trials = {t["optimizer"]: t for t in res["trials"] if t["role"] == "baseline"}
    assert sorted(trials) == sorted(LR_FREE)
    sha = res["init_sha256"]["0"]
    for name, trial in trials.items():
        assert trial["name"] == f"baseline_{name}" and trial["init_sha256"] == sha
        # TinyNet's StepLR is dropped: the optimizer's own step size is the point.
        assert trial["note"] == "the module's scheduler dropped"
        package, cls, _ = OPTIMIZERS[name]
        optimizer = getattr(importlib.import_module(package), cls)
        # The README's recipe: only configure_optimizers changes (and Schedule-Free's modes).
        train, val = replay(
            run_dir, trial, 4, optimizer=optimizer, callbacks=(ScheduleFreeModes(),)
        )
        n = len(trial["val_loss"])
        assert n == 4 or trial["diverged"], name
        torch.testing.assert_close(torch.tensor(val[:n]), torch.tensor(trial["val_loss"]),
                                   rtol=1e-5, atol=0, msg=name)  # fmt: skip
        torch.testing.assert_close(torch.tensor(train[:n]), torch.tensor(trial["train_loss"]),
                                   rtol=1e-5, atol=0, msg=name)  # fmt: skip


def test_peers_are_ranked_beside_the_search_with_what_they_cost(peers_run):
    _, res = peers_run
    rows = {r["label"]: r for r in res["comparison"]["rows"] if r["source"] == "baseline"}
    assert sorted(rows) == sorted([*LR_FREE, "optuna"])
    by_key = {f"seed{t['seed']}/{t['name']}": t for t in res["trials"]}
    for peer in res["baselines"]:
        trial = by_key[peer["trial"]]
        assert rows[peer["name"]]["finals"] == [None if trial["diverged"] else trial["final_loss"]]
        if peer["name"] != "optuna":
            assert peer["steps"] == trial["steps"] > 0 and peer["trials"] == 1
    optuna = next(b for b in res["baselines"] if b["name"] == "optuna")
    ran = [t for t in res["trials"] if t["role"] == "optuna"]
    # Optuna spends the search's budget: its finder, race and winner's steps, no more.
    search = res["searches"][0]
    winner = by_key[search["trial"]]
    assert optuna["budget"] == search["finder_steps"] + search["race_steps"] + winner["steps"]
    assert optuna["steps"] == sum(t["steps"] for t in ran) <= optuna["budget"]
    assert optuna["trials"] == len(ran) >= 3
    # Its answer is its best trial that trained the full budget.
    full = [t for t in ran if t["stop_epochs"] is None and not t["diverged"]]
    best = min(full, key=lambda t: t["final_loss"])
    assert optuna["trial"] == f"seed0/{best['name']}" and optuna["lr"] == best["lr"]
    assert all(t["name"].endswith(f"_optuna{i}") for i, t in enumerate(ran))


def test_an_interrupted_optuna_study_resumes_to_the_same_trials(peers_run, tmp_path):
    run_dir, res = peers_run
    cut = tmp_path / run_dir.name
    shutil.copytree(run_dir, cut)
    data = json.loads((cut / "results.json").read_text())
    ran = [t for t in data["trials"] if t["role"] == "optuna"]
    keep = ran[:2]  # stopped during its third trial
    data["trials"] = [t for t in data["trials"] if t["role"] != "optuna"] + keep
    data["baselines"] = [b for b in data["baselines"] if b["name"] != "optuna"]
    data["status"], data["comparison"] = "interrupted", None
    (cut / "results.json").write_text(json.dumps(data))
    lr_lab.resume(cut, quiet=True)
    again = json.loads((cut / "results.json").read_text())
    assert again["status"] == "complete"

    def study(d):
        return [(t["name"], t["lr"], t["val_loss"], t["stop_epochs"]) for t in d["trials"]
                if t["role"] == "optuna"]  # fmt: skip

    assert study(again) == study(res)
    assert [b for b in again["baselines"] if b["name"] == "optuna"] == [
        b for b in res["baselines"] if b["name"] == "optuna"
    ]


def test_an_edited_optuna_trial_is_refused(peers_run, tmp_path):
    run_dir, _ = peers_run
    edited = tmp_path / run_dir.name
    shutil.copytree(run_dir, edited)
    data = json.loads((edited / "results.json").read_text())
    trial = next(t for t in data["trials"] if t["role"] == "optuna")
    trial["lr"] *= 2  # the name still says Optuna's LR
    data["status"] = "interrupted"
    (edited / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"optuna0 is recorded as optuna at lr .*edited"):
        lr_lab.resume(edited, quiet=True)


def test_a_missing_package_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prodigyopt" else find_spec(name, *a),
    )
    with pytest.raises(UsageError, match=r'baselines: prodigy needs the prodigyopt package: pip '
                       r'install -e "\.\[peers\]"'):  # fmt: skip
        lr_lab.run({**CONFIG, "baselines": ["prodigy"]}, out=tmp_path / "runs", quiet=True)
    assert not (tmp_path / "runs").exists()


def test_optuna_needs_the_search_whose_budget_it_gets(tmp_path):
    with pytest.raises(UsageError, match="optuna gets the search's budget"):
        lr_lab.run({**CONFIG, "baselines": ["optuna"], "search": {"enabled": False}},
                   out=tmp_path, quiet=True)  # fmt: skip
    with pytest.raises(UsageError, match="baselines"):
        lr_lab.run({**CONFIG, "baselines": ["adagrad"]}, out=tmp_path, quiet=True)
