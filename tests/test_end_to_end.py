"""The whole lab, as a user runs it: files written, read back, agreeing with what was printed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from lr_lab.cli import main
from lr_lab.config.files import DEFAULT_CONFIG
from lr_lab.config.parse import load
from lr_lab.config.schema import ExperimentConfig
from tests.conftest import TINY_ARGS, only_run_dir
from tests.tb import declared_metrics, hparams_of, plugin_tags, scalars
from tests.test_run_folder import run_cli

# Experiment configs (study.yaml is the rule study's: tests/test_study.py checks it).
CONFIGS = sorted(
    p
    for p in DEFAULT_CONFIG.parent.glob("*.yaml")
    if p.stem != "study"
    and (p.stem != "forecasting" or importlib.util.find_spec("pytorch_forecasting"))
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([*TINY_ARGS, "--out", str(out)])
    assert code == 0
    return only_run_dir(out), buf.getvalue()


def test_run_folder_holds_every_output(tiny_run):
    run_dir, _ = tiny_run
    for name in (
        "results.json",
        "config.yaml",
        "loss_curves.png",
        "lr_finder.png",
        "lr_sweep.png",
        "seed0/init.ckpt",
    ):
        assert (run_dir / name).is_file(), name
    for png in run_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert not list(run_dir.rglob(".lr_find*")) and not list(run_dir.rglob("lightning_logs"))
    assert not list(run_dir.glob(".results-*"))  # no temporary file left by the atomic write


def test_results_json_contents(tiny_run):
    run_dir, _ = tiny_run
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "complete" and res["lightning_version"]
    sha = res["init_sha256"]["0"]
    ckpt = torch.load(run_dir / "seed0/init.ckpt", weights_only=True)
    from lr_lab.training.initial_state import weights_sha256

    assert weights_sha256(ckpt["state_dict"]) == sha
    fixed = [t for t in res["trials"] if t["role"] == "fixed"]
    checks = [t for t in res["trials"] if t["role"] == "finder_check"]
    assert sorted(t["lr"] for t in fixed) == [0.001, 0.05, 5.0]
    assert checks, "each distinct suggestion is trained"
    for t in res["trials"]:
        assert t["init_sha256"] == sha
        assert set(t) >= {
            "lr",
            "train_loss",
            "val_loss",
            "final_train_loss",
            "final_val_loss",
            "diverged",
            "role",
        }
    assert next(t for t in fixed if t["lr"] == 5.0)["diverged"]
    finder = res["finder"]
    assert len(finder["lr"]) == len(finder["loss"]) and finder["suggestion"] is not None
    assert set(finder["rules"]) == {"lightning", "steep_log", "valley", "minimum_div10"}
    distinct = {v for v in finder["rules"].values() if v is not None}
    for lr in distinct:
        assert any(math.isclose(t["lr"], lr) for t in res["trials"])
    comp = res["comparison"]
    assert comp["best_fixed"]["lr"] == 0.05 and comp["suggested_lr"] == finder["suggestion"]
    rows = {r["label"]: r for r in comp["rows"]}
    assert (
        comp["suggested_rank"]
        == rows["lightning"]["rank"]
        == 1  # rows that share their trials (the search's winner on a rule's LR) share a rank
        + len(
            {r["mean"] for r in comp["rows"] if r["rank"] and r["mean"] < rows["lightning"]["mean"]}
        )
    )
    best = min((r for r in comp["rows"] if r["rank"]), key=lambda r: r["mean"])
    assert comp["lowest"]["lr"] == best["lr"] and comp["lowest"]["loss"] == best["mean"]
    from lr_lab.analysis.recommendation import TRUSTED_RULES

    assert TRUSTED_RULES  # the search answers when it ran; the rules answer without it
    assert comp["recommendation"]["source"] == "search" and res["searches"]
    search = next(r for r in comp["rows"] if r["source"] == "search")
    assert comp["recommendation"]["lr"] == search["lr"] == res["searches"][0]["lr"]


def test_printed_table_agrees_with_results(tiny_run):
    run_dir, printed = tiny_run
    res = json.loads((run_dir / "results.json").read_text())
    best = res["comparison"]["best_fixed"]
    assert f"Best fixed LR: {best['lr']:.3g} (val loss {best['loss']:.4g})" in printed
    for row in res["comparison"]["rows"]:
        if row["mean"] is not None:
            assert f"{row['mean']:.4g}" in printed
    lines = printed.strip().splitlines()
    assert lines[-5].startswith("Run folder: ") and str(run_dir) in lines[-5]
    assert lines[-4] == f"TensorBoard: tensorboard --logdir {run_dir}"
    assert "#text&runSelectionState=eyJfc3VtbWFyeSI6dHJ1ZX0%3D" in lines[-3]  # {"_summary":true}


def test_tensorboard_runs_per_trial_with_hparams(tiny_run):
    run_dir, _ = tiny_run
    res = json.loads((run_dir / "results.json").read_text())
    ranks = {n: r["rank"] for r in res["comparison"]["rows"] for n in r["trial_names"]}
    for t in res["trials"]:
        run = run_dir / t["tb_run"]
        tags = scalars(run)
        assert "loss/train" in tags, t["name"]
        # Nothing non-finite or absurd anywhere: a diverged curve ends before its divergence.
        values = [v for points in tags.values() for _, v in points]
        assert all(math.isfinite(v) and abs(v) < 1e6 for v in values), t["name"]
        # Every trial declares every column: the dashboard takes one trial's declaration, and a
        # diverged trial's alone hid the final loss, rank and ratio of all (seen in a browser).
        assert declared_metrics(run) == [
            "trial/diverged", "trial/final_loss", "trial/rank", "trial/ratio_to_best_fixed"
        ], t["name"]  # fmt: skip
        if t["diverged"]:
            assert "trial/final_loss" not in tags and tags["trial/diverged"][0][1] == 1
            continue
        epochs = t["stop_epochs"] or 3  # a race trial stops after its rung's epochs
        assert len(tags["loss/val"]) == len(tags["loss/train_epoch"]) == epochs
        assert [v for _, v in tags["loss/train_epoch"]] == pytest.approx(t["train_loss"], rel=1e-6)
        assert [v for _, v in tags["loss/val"]] == pytest.approx(t["val_loss"], rel=1e-6)
        assert tags["trial/final_loss"][0][1] == pytest.approx(t["final_loss"], rel=1e-6)
        if ranks.get(f"seed0/{t['name']}"):
            assert tags["trial/rank"][0][1] == ranks[f"seed0/{t['name']}"]
        assert "_hparams_/session_start_info" in plugin_tags(run, "hparams")
    finder = scalars(run_dir / "seed0/finder")
    assert {
        "lr_finder/loss_lightning",
        "lr_finder/loss_corrected",
        "lr_finder/loss_raw",
        "lr_finder/lr",
    } <= set(finder)
    assert [v for _, v in finder["lr_finder/loss_lightning"]] == pytest.approx(
        res["finders"][0]["loss"]
    )
    texts = plugin_tags(run_dir / "_summary", "text")
    assert {
        "answer/text_summary",
        "ranking/rows 1-8/text_summary",
        "settings/text_summary",
    } <= texts


def test_tensorboard_runs_sort_by_lr_and_hparams_show_what_differs(tiny_run):
    run_dir, _ = tiny_run
    res = json.loads((run_dir / "results.json").read_text())
    # TensorBoard lists runs by name: that order is the LR order.
    runs = sorted(
        p.name for p in (run_dir / "seed0").iterdir() if p.is_dir() and p.name != "finder"
    )
    by_name = {t["name"]: t for t in res["trials"]}
    assert [by_name[n]["lr"] for n in runs] == sorted(t["lr"] for t in res["trials"])
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir())[0] == "_summary"
    for t in res["trials"]:
        params = hparams_of(run_dir / t["tb_run"])
        assert set(params) == {"lr", "from", "seed", "verdict", "experiment"}
        expected = {"fixed": "grid", "search": "search"}.get(t["role"])
        if t["role"] == "finder_check":
            expected = "rule " + "+".join(t["rules"])
        elif t["role"] == "race":
            n = t["stop_epochs"]
            budget = f"{n} epoch{'' if n == 1 else 's'}" if n else "the full budget"
            expected = f"race rung {t['rung']} ({budget})"
        assert params["from"] == expected
        assert params["seed"] == "0" and params["experiment"] == run_dir.name
        assert params["lr"] == pytest.approx(t["lr"]) and params["verdict"] == t["verdict"]
    finder = res["finders"][0]
    steps = [s for s, _ in scalars(run_dir / "seed0/finder")["lr_finder/lr"]]
    assert steps == [round(1000 * math.log10(lr)) for lr in finder["lr"]]  # x reads as the LR


def test_every_config_file_validates():
    from lr_lab.api import check

    assert DEFAULT_CONFIG in CONFIGS
    for path in CONFIGS:
        request = load(str(path))
        assert isinstance(check(request).cfg, ExperimentConfig), path


def test_default_yaml_is_the_dataclass_defaults():
    # No --config means the dataclass defaults; configs/default.yaml spells them out.
    assert load(str(DEFAULT_CONFIG)).config == ExperimentConfig()


def test_print_config(capsys):
    assert main(["--print_config", "--trials.max_epochs", "4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trials"]["max_epochs"] == 4 and printed["trials"]["lrs"] == [0.01, 1.0, 0.0001]
    # Checked as a run would be: a value a run refuses is not printed as if it were usable.
    assert main(["--print_config", "--trials.max_epochs", "0"]) == 2
    assert "trials.max_epochs = 0" in capsys.readouterr().err


def test_repeats_over_seeds_report_spread(tmp_path):
    code = main(
        [
            *TINY_ARGS,
            "--seeds",
            "[0, 1]",
            "--finder.rules",
            "[lightning, valley]",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    run_dir = only_run_dir(tmp_path)
    res = json.loads((run_dir / "results.json").read_text())
    assert (
        set(res["init_sha256"]) == {"0", "1"} and res["init_sha256"]["0"] != res["init_sha256"]["1"]
    )
    for seed in (0, 1):
        trials = [t for t in res["trials"] if t["seed"] == seed]
        assert {t["init_sha256"] for t in trials} == {res["init_sha256"][str(seed)]}
        assert len({t["first_batch_sha256"] for t in trials}) == 1
    assert len(res["finders"]) == 2
    rows = {r["label"]: r for r in res["comparison"]["rows"]}
    good = rows["0.05"]
    finals = [t["final_val_loss"] for t in res["trials"] if t["lr"] == 0.05]
    assert good["mean"] == pytest.approx(sum(finals) / 2) and good["spread"] == [
        min(finals),
        max(finals),
    ]
    valley = res["comparison"]["rules"]["valley"]
    lrs = [f["rules"]["valley"] for f in res["finders"]]
    assert (valley["lr_min"], valley["lr_max"]) == (min(lrs), max(lrs))
    assert rows["5"]["verdict"] == "diverged" and rows["5"]["diverged_seeds"] == 2
    for png in ("loss_curves.png", "lr_sweep.png", "lr_finder.png"):
        assert (run_dir / png).stat().st_size > 20_000
    assert (run_dir / "seed1" / "init.ckpt").is_file()


def run_quiet(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    return code, buf.getvalue()


def test_finder_disabled(tmp_path):
    code, printed = run_quiet([*TINY_ARGS, "--finder.enabled", "false", "--out", str(tmp_path)])
    run_dir = only_run_dir(tmp_path)
    res = json.loads((run_dir / "results.json").read_text())
    assert code == 0 and res["finders"] == [] and res["finder"] is None
    assert {t["role"] for t in res["trials"]} == {"fixed"}
    assert not (run_dir / "lr_finder.png").exists() and (run_dir / "loss_curves.png").is_file()
    assert "Lightning" not in printed and "Best fixed LR: 0.05" in printed


def test_finder_suggestions_not_verified(tmp_path):
    args = [*TINY_ARGS, "--finder.verify", "false", "--search.enabled", "false"]
    code, printed = run_quiet([*args, "--out", str(tmp_path)])
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert code == 0 and {t["role"] for t in res["trials"]} == {"fixed"}
    rules = {r["label"]: r for r in res["comparison"]["rows"] if r["source"] == "rule"}
    grid = [t["lr"] for t in res["trials"]]
    unverified = [r for r in rules.values() if not any(math.isclose(r["lr"], g) for g in grid)]
    assert unverified and {r["verdict"] for r in unverified} == {"not verified"}
    assert all(r["rank"] is None for r in unverified)
    assert "not verified" in printed  # in the table (the answer names only ranked rules)


def write_csv(path: Path, rows: list[tuple[float, ...]]) -> Path:
    path.write_text("x1,x2,y\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_a_whole_csv_experiment_and_a_changed_csv_is_refused(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=gen)
    rows = [(a, b, 3 * a - b) for a, b in x.tolist()]
    csv = write_csv(tmp_path / "data.csv", rows)
    args = [*TINY_ARGS, "--data.csv_path", str(csv), "--out", str(tmp_path / "runs")]
    code, printed = run_quiet(args)
    run_dir = only_run_dir(tmp_path / "runs")
    res = json.loads((run_dir / "results.json").read_text())
    assert code == 0 and res["status"] == "complete" and len(res["csv_sha256"]) == 64
    assert res["config"]["data"]["init_args"]["csv_path"] == str(csv)
    assert len(res["finders"]) == 1 and "Best fixed LR" in printed
    res["status"], res["trials"] = "interrupted", res["trials"][:1]
    (run_dir / "results.json").write_text(json.dumps(res))
    write_csv(csv, rows[:-1])
    code, _ = run_quiet(["--resume", str(run_dir)])
    assert code == 2


def test_an_exact_fit_reports_and_resumes(tmp_path):
    # Issue: a trial that reaches loss 0 made the comparison divide by zero, forever.
    csv = write_csv(tmp_path / "ones.csv", [(1.0, 1.0, 1.0)] * 300)
    args = ["--data.csv_path", str(csv), "--model.hidden_dims", "[]", "--trials.max_epochs", "3",
            "--finder.num_training", "30", "--out", str(tmp_path / "runs")]  # fmt: skip
    code, printed = run_quiet(args)
    run_dir = only_run_dir(tmp_path / "runs")
    res = json.loads((run_dir / "results.json").read_text())
    assert code == 0 and res["status"] == "complete"
    assert min(t["final_val_loss"] for t in res["trials"] if t["final_val_loss"] is not None) < 1e-6
    for png in ("loss_curves.png", "lr_finder.png", "lr_sweep.png"):
        assert (run_dir / png).stat().st_size > 10_000
    assert run_quiet(["--resume", str(run_dir)])[0] == 0


@pytest.mark.slow
def test_the_wheel_runs_bundled_configs_outside_the_checkout(tmp_path):
    # pip install . (not -e): the configs ship in the wheel; run from a folder with no checkout.
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(root)],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("lr_lab-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    code = (
        "import lr_lab, sys\n"
        "assert lr_lab.__file__.startswith(sys.argv[1]), lr_lab.__file__\n"
        "r = lr_lab.run('sweep', quiet=True, overrides={'trials.max_epochs': 1, 'seeds': [0],\n"
        "               'trials.lrs': [0.01, 0.1], 'finder.num_training': 20})\n"
        "print(r.status, r.config['seeds'])\n"
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["complete", "[0]"]
    run = subprocess.run([sys.executable, "-m", "lr_lab.cli", "--config", "sweep", "--print_config"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0 and "seeds: [0, 1, 2]" in run.stdout, run.stderr


@pytest.mark.slow
def test_the_default_run_is_the_three_lr_lesson(tmp_path):
    # README, "What it prints": one LR converges, one blows up, one crawls; Lightning's
    # suggestion trains badly; the search's verified LR ranks at the top.
    code, _, err = run_cli(["--out", str(tmp_path)])
    assert code == 0, err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    verdicts = {t["lr"]: t["verdict"] for t in res["trials"] if t["role"] == "fixed"}
    assert verdicts == {0.01: "good", 1.0: "diverged", 0.0001: "slow"}
    rows = {r["label"]: r for r in res["comparison"]["rows"]}
    assert rows["lightning"]["ratio_to_best_fixed"] > 100
    assert rows["search"]["rank"] <= 2 and rows["search"]["ratio_to_best_fixed"] < 1
