"""Divergence at a known step, interruption by a real signal and resume, determinism, --init."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lr_lab.cli import main
from lr_lab.experiment.folder import new_run_dir
from lr_lab.training.model import RegressionModule
from lr_lab.training.runner import run_trial
from tests.conftest import TINY_ARGS, fixed_specs, init_state, only_run_dir, tiny_config, track
from tests.conftest import run_cli as run_cli_err

ROOT = Path(__file__).resolve().parent.parent


def metrics(results: dict) -> dict:
    """Everything measured about training, without timings."""
    keep = ("lr", "role", "train_loss", "val_loss", "diverged", "diverged_step", "init_sha256",
            "first_batch_sha256", "first_step_loss", "verdict")  # fmt: skip
    trials = {f"{t['seed']}/{t['name']}": {k: t[k] for k in keep} for t in results["trials"]}
    finders = [{k: f[k] for k in ("lr", "loss", "suggestion", "rules")} for f in results["finders"]]
    rows = [
        {k: r[k] for k in ("label", "lrs", "finals", "rank", "verdict")}
        for r in results["comparison"]["rows"]
    ]
    return {"trials": trials, "finders": finders, "rows": rows, "init": results["init_sha256"]}


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(args)
    return code, out.getvalue()


def test_nan_at_a_known_step_marks_only_that_trial(tmp_path, monkeypatch):
    cfg = tiny_config()
    init_state(cfg, tmp_path / "clean")
    clean = {r.lr: r for r in map(run_trial, fixed_specs(cfg, 0, tmp_path / "clean"))}

    original = RegressionModule._loss

    def poisoned(self, batch):
        loss = original(self, batch)
        at_step_6 = self.training and self.trainer.global_step == 6
        return loss * math.nan if self.lr == 0.05 and at_step_6 else loss

    monkeypatch.setattr(RegressionModule, "_loss", poisoned)
    init_state(cfg, tmp_path / "nan")
    hit = {r.lr: r for r in map(run_trial, fixed_specs(cfg, 0, tmp_path / "nan"))}
    assert hit[0.05].diverged and hit[0.05].diverged_step == 6 and hit[0.05].steps == 7
    assert not clean[0.05].diverged
    for lr in (0.001, 5.0):  # the other trials: identical numbers
        for key in ("train_loss", "val_loss", "diverged", "diverged_step", "first_step_loss"):
            assert getattr(hit[lr], key) == getattr(clean[lr], key), (lr, key)


def test_trial_order_does_not_change_results(tmp_path):
    cfg = tiny_config()
    init_state(cfg, tmp_path / "a")
    init_state(cfg, tmp_path / "b")
    forward = [run_trial(s) for s in fixed_specs(cfg, 0, tmp_path / "a")]
    backward = [run_trial(s) for s in reversed(fixed_specs(cfg, 0, tmp_path / "b"))][::-1]
    for f, b in zip(forward, backward, strict=True):
        assert (f.lr, f.train_loss, f.val_loss, f.init_sha256) == (
            b.lr,
            b.train_loss,
            b.val_loss,
            b.init_sha256,
        )


SLOW_ARGS = [
    "--data.n_samples", "512", "--data.batch_size", "16", "--model.hidden_dims", "[32]",
    "--trials.lrs", "[0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]", "--trials.max_epochs", "8",
    "--finder.num_training", "40", "--trials.batched", "false",
]  # fmt: skip


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight")
    code, _ = run_cli([*SLOW_ARGS, "--out", str(out)])
    assert code == 0
    return json.loads((only_run_dir(out) / "results.json").read_text())


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_interrupt_by_signal_then_resume_matches_uninterrupted(tmp_path, sig, straight_run):
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = track(subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *SLOW_ARGS, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ))  # fmt: skip
    deadline = time.monotonic() + 60
    results_file = None
    while time.monotonic() < deadline:
        found = list(out.glob("*/results.json"))
        if found and len(json.loads(found[0].read_text())["trials"]) >= 2:
            results_file = found[0]
            break
        time.sleep(0.02)
    assert results_file is not None, proc.communicate()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    partial = json.loads(results_file.read_text())
    assert partial["status"] == "interrupted"
    assert 2 <= len(partial["trials"]) < 6 and partial["pending"]
    done = {t["name"] for t in partial["trials"]}
    assert not done & {p.split("/")[1] for p in partial["pending"]}
    run_dir = results_file.parent
    assert not list(run_dir.rglob(".lr_find*")) and not list(Path.cwd().glob(".lr_find*"))

    code, printed = run_cli(["--resume", str(run_dir)])
    assert code == 0 and "resuming" in printed
    resumed = json.loads(results_file.read_text())
    assert resumed["status"] == "complete" and resumed["pending"] == []

    assert metrics(resumed) == metrics(straight_run)
    # No trial's TensorBoard run holds a second, partial curve.
    from tests.tb import scalars

    for t in resumed["trials"]:
        steps = [s for s, _ in scalars(run_dir / t["tb_run"])["loss/train"]]
        assert steps == sorted(set(steps)), t["name"]


def test_resume_refuses_a_changed_init_checkpoint(tmp_path, capsys):
    code, _ = run_cli([*TINY_ARGS, "--out", str(tmp_path)])
    run_dir = only_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    results["status"] = "interrupted"
    results["trials"] = results["trials"][:1]
    (run_dir / "results.json").write_text(json.dumps(results))
    ckpt = torch.load(run_dir / "seed0/init.ckpt", weights_only=True)
    ckpt["state_dict"]["net.layers.0.bias"] += 1
    torch.save(ckpt, run_dir / "seed0/init.ckpt")
    code = main(["--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "weights changed since the run recorded them" in err and "init.ckpt" in err


def test_init_reuses_a_checkpoint_across_runs(tmp_path):
    run_cli([*TINY_ARGS, "--out", str(tmp_path / "first")])
    first_dir = only_run_dir(tmp_path / "first")
    code, _ = run_cli(
        [
            *TINY_ARGS,
            "--seed",
            "5",
            "--init",
            str(first_dir / "seed0/init.ckpt"),
            "--out",
            str(tmp_path / "second"),
        ]
    )
    assert code == 0
    first = json.loads((first_dir / "results.json").read_text())
    second = json.loads((only_run_dir(tmp_path / "second") / "results.json").read_text())
    assert second["init_sha256"]["5"] == first["init_sha256"]["0"]
    assert all(t["init_sha256"] == first["init_sha256"]["0"] for t in second["trials"])


def test_run_folders_are_never_reused(tmp_path):
    a, b = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert a != b and a.is_dir() and b.is_dir()


def test_interrupted_batched_trials_resume(tmp_path, monkeypatch, straight_run):
    from lr_lab.training.batched import StackedTrialModule

    original = StackedTrialModule._train_step

    def signal_at_step_5(self, x, y):
        if self.trainer.global_step == 5:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, mid-way through the stacked trials
        return original(self, x, y)

    monkeypatch.setattr(StackedTrialModule, "_train_step", signal_at_step_5)
    args = [a if a != "false" else "true" for a in SLOW_ARGS]
    code, _ = run_cli([*args, "--out", str(tmp_path)])
    assert code == 130
    run_dir = only_run_dir(tmp_path)
    partial = json.loads((run_dir / "results.json").read_text())
    assert (
        partial["status"] == "interrupted"
        and partial["trials"] == []
        and partial["pending"][-3:] == ["seed0/finder", "seed0/finder checks", "seed0/search"]
        and len(partial["pending"]) == 9
    )
    monkeypatch.setattr(StackedTrialModule, "_train_step", original)
    code, _ = run_cli(["--resume", str(run_dir)])
    resumed = json.loads((run_dir / "results.json").read_text())
    assert code == 0 and resumed["status"] == "complete"
    # Batched and sequential agree to float tolerance, not bit for bit: compare the answer.
    assert [(r["label"], r["rank"], r["verdict"]) for r in resumed["comparison"]["rows"]] == [
        (r["label"], r["rank"], r["verdict"]) for r in straight_run["comparison"]["rows"]
    ]


def test_resume_of_a_complete_run_changes_nothing(tmp_path):
    from tests.test_cli_errors import snapshot

    run_cli([*TINY_ARGS, "--out", str(tmp_path)])
    run_dir = only_run_dir(tmp_path)
    before = snapshot(run_dir)
    code, printed = run_cli(["--resume", str(run_dir)])
    assert code == 0 and "Best fixed LR" in printed
    assert snapshot(run_dir) == before


# ------------------------------------------------------------------ output and disk failures

FAST = [*TINY_ARGS, "--trials.max_epochs", "2"]


def the_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lr-lab: error: "), err
    assert "Traceback" not in err and "lr_lab-tmp" not in err, err
    return lines[0]


def status_of(run_dir: Path) -> str:
    return json.loads((run_dir / "results.json").read_text())["status"]


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete")
    code, _, err = run_cli_err([*FAST, "--out", str(out)])
    assert code == 0, err
    return only_run_dir(out)


@pytest.fixture
def run_copy(complete_run, tmp_path) -> Path:
    import shutil

    shutil.copytree(complete_run, tmp_path / "run")
    return tmp_path / "run"


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_dropped_and_the_run_finishes(tmp_path, monkeypatch, capsys):
    with open("/dev/full", "w") as full:  # `lr-lab > /dev/full`: every flush fails with ENOSPC
        monkeypatch.setattr(sys, "stdout", full)
        code = main([*FAST, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "lr-lab: stdout: No space left on device; the rest of the output is dropped, the run goes on"
    ]
    assert status_of(only_run_dir(tmp_path)) == "complete"


def test_a_closed_stderr_does_not_fail_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)  # as Python starts under `lr-lab 2>&-`
    code, _ = run_cli([*FAST, "--out", str(tmp_path)])
    null = sys.stderr
    assert code == 0 and null is not None
    null.close()
    assert status_of(only_run_dir(tmp_path)) == "complete"


def test_the_api_runs_without_a_stderr(tmp_path, monkeypatch):
    # A notebook or service may have sys.stderr = None; only the CLI replaces it.
    import lr_lab

    monkeypatch.setattr(sys, "stderr", None)
    results = lr_lab.run(None, out=tmp_path, quiet=True, overrides={"trials.max_epochs": 1})
    assert results.status == "complete"


def test_a_full_disk_in_the_report_is_one_line_naming_the_file_and_no_thread(run_copy, monkeypatch):
    from tensorboard.summary.writer.record_writer import RecordWriter

    summary = run_copy / "_summary/events.out.tfevents.0000000000.lr_lab_report"
    summary.unlink()  # a damaged report: the resume redraws it
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    monkeypatch.setattr(RecordWriter, "write", no_space)
    code, _, err = run_cli_err(["--resume", str(run_copy)])
    line = the_error_line(err)
    assert code == 1 and f"{summary}: No space left on device" in line
    assert thread_errors == []  # SummaryWriter's writing thread printed its own traceback
    assert status_of(run_copy) == "failed" and not summary.exists()
    assert not list(run_copy.rglob("*.lr_lab-tmp"))


def test_a_full_disk_in_a_trials_curves_names_the_file(tmp_path, monkeypatch):
    from tensorboard.summary.writer.record_writer import RecordWriter

    from lr_lab.training.events import ScalarLog

    log = ScalarLog(tmp_path / "trial")
    log.add("loss/train", 1.0, 0)
    monkeypatch.setattr(RecordWriter, "write", no_space)
    with pytest.raises(OSError) as caught:
        log.close()
    assert caught.value.errno == errno.ENOSPC
    assert Path(caught.value.filename).parent == tmp_path / "trial"
    assert Path(caught.value.filename).name.startswith("events.out.tfevents.")


def test_a_status_that_cannot_be_written_is_said_stale(tmp_path, monkeypatch):
    import lr_lab.analysis.results

    real, calls = lr_lab.analysis.results.atomic_write, {"n": 0}

    def full_from_the_third(path, data, exclusive=False):
        calls["n"] += 1
        if calls["n"] >= 3:  # the first trial's record, and the failed status after it
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, exclusive)

    monkeypatch.setattr(lr_lab.analysis.results, "atomic_write", full_from_the_third)
    code, _, err = run_cli_err([*FAST, "--out", str(tmp_path)])
    line = the_error_line(err)
    assert code == 1 and "results.json: No space left on device" in line
    assert line.endswith("results.json could not be updated: it still says running")
    assert status_of(only_run_dir(tmp_path)) == "running"  # the previous file, intact


def test_a_read_only_run_folder_names_the_real_file(run_copy, monkeypatch):
    import lr_lab.atomic

    def read_only(dir, prefix, suffix):  # noqa: A002 - mkstemp's names
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}x1y2z3{suffix}")

    (run_copy / "lr_sweep.png").write_bytes(b"damaged")
    monkeypatch.setattr(lr_lab.atomic.tempfile, "mkstemp", read_only)
    code, _, err = run_cli_err(["--resume", str(run_copy)])
    line = the_error_line(err)
    assert code == 1 and f"{run_copy / 'results.json'}: Read-only file system" in line
    assert status_of(run_copy) == "complete"


def test_a_folder_in_place_of_a_report_file_is_refused(run_copy):
    from tests.test_cli_errors import snapshot

    (run_copy / "loss_curves.png").unlink()
    (run_copy / "loss_curves.png").mkdir()
    before = snapshot(run_copy)
    code, _, err = run_cli_err(["--resume", str(run_copy)])
    line = the_error_line(err)
    assert code == 2 and f"{run_copy / 'loss_curves.png'}: a folder" in line
    assert snapshot(run_copy) == before and status_of(run_copy) == "complete"


def test_atomic_writes_name_the_real_file(tmp_path):
    from lr_lab.atomic import atomic_file, atomic_write, clean_temp

    (tmp_path / "plot.png").mkdir()
    with pytest.raises(IsADirectoryError) as caught, atomic_file(tmp_path / "plot.png") as fh:
        fh.write(b"png")
    assert caught.value.filename == str(tmp_path / "plot.png")
    atomic_write(tmp_path / "once", "x", exclusive=True)
    with pytest.raises(FileExistsError) as caught:  # still the type callers catch
        atomic_write(tmp_path / "once", "y", exclusive=True)
    assert caught.value.filename == str(tmp_path / "once")
    # The report's event files are written inside each trial's run: seedN/<trial>/.
    stale = tmp_path / "seed0/0870_lr=0.05/.events.abc.lr_lab-tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    assert clean_temp(tmp_path) == [stale] and not stale.exists()
