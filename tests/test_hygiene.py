"""Nothing left behind, nothing silently wrong: exits, kills, endless steps, threads, resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import lr_lab
from lr_lab.training.divergence import DivergenceGuard
from tests.conftest import TINY_ARGS, only_run_dir
from tests.test_run_folder import ROOT, run_cli, spawn, wait_for
from tests.test_study import alive, children, wait_gone
from tests.test_user_modules import USER_ARGS


def status(out: Path) -> dict:
    return json.loads((only_run_dir(out) / "results.json").read_text())


def test_sys_exit_in_a_users_training_step_is_one_line_naming_the_trial(tmp_path):
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.ExitsInStep",
            "--trials.executor", "inline", "--finder.enabled", "false", "--out", str(tmp_path)]  # fmt: skip
    code, _, err = run_cli(args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "seed0/" in lines[0] and "SystemExit: 3" in lines[0] and "error.log" in lines[0]
    assert status(tmp_path)["status"] == "failed"


def test_a_second_ctrl_c_stops_an_endless_training_step_and_keeps_what_finished(tmp_path):
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.EndlessStep",
            "--trials.lrs", "[0.01, 0.05]", "--trials.executor", "inline",
            "--finder.enabled", "false"]  # fmt: skip
    proc = spawn(args, tmp_path)
    wait_for(lambda: (r := list(tmp_path.glob("*/results.json")))
             and len(json.loads(r[0].read_text())["trials"]) == 1)  # fmt: skip
    time.sleep(0.5)  # inside the endless step of the second trial
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the first asks for a stop at a step, which never comes
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    res = status(tmp_path)
    assert res["status"] == "interrupted" and len(res["trials"]) == 1
    assert "seed0/0870_lr=0.05" in res["pending"]


def test_a_killed_lab_takes_its_worker_processes_with_it(tmp_path):
    args = [*TINY_ARGS, "--trials.lrs", "[0.05, 0.01, 0.003, 0.001]", "--trials.max_epochs", "40",
            "--data.n_samples", "2000", "--trials.batched", "false",
            "--trials.executor", "processes", "--trials.workers", "2"]  # fmt: skip
    proc = spawn(args, tmp_path)
    wait_for(lambda: len(children(proc.pid)) >= 2, timeout=120)
    workers = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    assert not wait_gone(workers, 10), "a worker outlived the lab"


def test_a_processes_run_resumes_inline_on_this_machine(tmp_path):
    # Where trials run is not part of the experiment: a run started on workers (or on a Ray
    # cluster that is gone) finishes here.
    args = [*TINY_ARGS, "--trials.executor", "processes", "--trials.batched", "false",
            "--out", str(tmp_path)]  # fmt: skip
    assert run_cli(args)[0] == 0
    run_dir = only_run_dir(tmp_path)
    res = json.loads((run_dir / "results.json").read_text())
    res["status"], res["trials"] = "interrupted", res["trials"][:1]
    (run_dir / "results.json").write_text(json.dumps(res))
    code, _, err = run_cli(["--resume", str(run_dir), "--trials.executor", "inline"])
    assert code == 0, err
    assert status(tmp_path)["status"] == "complete"
    code, _, err = run_cli(["--resume", str(run_dir), "--trials.max_epochs", "3"])
    assert code == 2 and "takes no other options but where trials run" in err


def test_bad_input_found_late_creates_no_runs_folder(tmp_path):
    out = tmp_path / "runs"
    args = ["--model", "tests.user_modules.NoLR", "--data", "tests.user_modules.TinyData",
            "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(args)
    assert code == 2 and "no learning-rate attribute" in err and not out.exists()


def test_runs_in_two_threads_take_turns_and_measure_what_each_alone_measures(tmp_path):
    config = {"model": {"class_path": "tests.user_modules.TinyNet"},
              "data": {"class_path": "tests.user_modules.TinyData"},
              "trials": {"lrs": [0.05, 0.01], "max_epochs": 2}, "finder": {"enabled": False}}  # fmt: skip
    alone = lr_lab.run(config, out=tmp_path / "alone", quiet=True)
    got = {}

    def one(name: str) -> None:
        got[name] = lr_lab.run(config, out=tmp_path / name, quiet=True)

    threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):  # the shuffling DataModule draws from the global RNG: no race
        assert [t.val_loss for t in got[name].trials] == [t.val_loss for t in alone.trials]


def test_a_run_in_a_thread_ends_interrupted_when_the_interpreter_stops(tmp_path):
    script = tmp_path / "threaded.py"
    script.write_text(
        "import sys, threading, time\nimport lr_lab\n"
        "cfg = {'model': 'tests.user_modules.TinyNet', 'data': 'tests.user_modules.TinyData',\n"
        "       'trials': {'lrs': [0.05, 0.01, 0.02, 0.03], 'max_epochs': 5000},\n"
        "       'finder': {'enabled': False}}\n"
        f"t = threading.Thread(target=lr_lab.run, args=(cfg,), kwargs={{'out': {str(tmp_path)!r},"
        " 'quiet': True})\n"
        "t.start()\ntime.sleep(8)\nsys.exit(0)  # the main thread ends: the interpreter stops\n"
    )
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    res = status(tmp_path)
    assert res["status"] == "interrupted", proc.stderr[-2000:]
    assert res["pending"]


# ------------------------------------------------------------------ divergence at any sign


def test_divergence_guard_limits_at_any_sign():
    guard = DivergenceGuard(4, 10.0)
    first = torch.tensor([2.0, -3.0, 0.0, 1.0])
    assert guard.check(first) is None
    # 2 -> limit 20; -3 -> limit -3 + 9 * 3 = 24; 0 -> no limit but non-finite; 1 -> 10.
    step = torch.tensor([19.9, 23.9, 1e30, 10.1])
    bad = guard.check(step)
    assert bad.tolist() == [False, False, False, True] and guard.step == [None, None, None, 1]
    bad = guard.check(torch.tensor([20.1, 24.1, float("nan"), 0.0]))
    assert bad.tolist() == [True, True, True, False] and guard.n_alive == 0
    assert "x the first loss 2" in guard.reason[0]
    assert "-3 plus 9 x its size" in guard.reason[1] and "nan" in guard.reason[2]


def test_divergence_guard_one_trial_and_a_zero_first_loss():
    guard = DivergenceGuard(1, 1000.0)
    guard.check(torch.tensor([0.0]))  # an exact fit: no scale, only non-finite values count
    assert guard.check(torch.tensor([1e30])) is None
    assert guard.check(torch.tensor([float("inf")])) is not None and guard.step == [2]


@pytest.mark.slow
def test_a_sigterm_ignored_by_an_endless_step_stops_after_the_grace(tmp_path):
    from lr_lab.interrupt import GRACE_S

    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.EndlessStep",
            "--trials.lrs", "[0.05]", "--trials.executor", "inline", "--finder.enabled", "false"]  # fmt: skip
    proc = spawn(args, tmp_path)
    wait_for(lambda: bool(list(tmp_path.glob("*/results.json"))))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _, err = proc.communicate(timeout=GRACE_S + 30)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert time.monotonic() - start >= GRACE_S - 1
    assert status(tmp_path)["status"] == "interrupted"
    assert not alive([proc.pid])
