"""Trials in worker processes and on Ray: the same numbers as inline; stops and dead workers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from lr_lab.executors import pool_pays
from tests.conftest import TINY_ARGS, only_run_dir
from tests.test_robustness import metrics
from tests.test_run_folder import run_cli, spawn, wait_for

ROOT = Path(__file__).resolve().parent.parent
USER = ["--model.class_path", "tests.user_modules.TinyNet",
        "--data.class_path", "tests.user_modules.TinyData"]  # fmt: skip


def args_of(kind: str) -> list[str]:
    if kind == "builtin":
        return [*TINY_ARGS, "--trials.batched", "false"]
    return [*USER, "--trials.lrs", "[0.05, 0.01, 50.0]", "--trials.max_epochs", "2",
            "--finder.num_training", "30"]  # fmt: skip


@pytest.fixture(scope="module")
def inline_runs(tmp_path_factory) -> dict[str, dict]:
    """The reference: the same experiments, inline."""
    out = {}
    for kind in ("builtin", "user"):
        folder = tmp_path_factory.mktemp(kind)
        code, _, err = run_cli(
            [*args_of(kind), "--trials.executor", "inline", "--out", str(folder)]
        )
        assert code == 0, err
        out[kind] = json.loads((only_run_dir(folder) / "results.json").read_text())
    return out


@pytest.mark.parametrize("kind", ["builtin", "user"])
def test_processes_give_the_numbers_inline_gives(tmp_path, inline_runs, kind):
    args = [*args_of(kind), "--trials.executor", "processes", "--trials.workers", "2"]
    code, printed, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    assert "(worker)" in printed
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert metrics(res) == metrics(inline_runs[kind])  # bit for bit on CPU


@pytest.mark.slow
def test_ray_gives_the_numbers_inline_gives(tmp_path, inline_runs):
    pytest.importorskip("ray")
    args = [*args_of("builtin"), "--trials.executor", "ray"]
    code, printed, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    run_dir = only_run_dir(tmp_path)
    res = json.loads((run_dir / "results.json").read_text())
    assert metrics(res) == metrics(inline_runs["builtin"]) and "(ray)" in printed
    # Each trial's TensorBoard run came back into the run folder; nothing of Ray's is there.
    for t in res["trials"]:
        assert list((run_dir / t["tb_run"]).glob("events.out.tfevents.*"))
    assert not [
        p for p in run_dir.rglob("*") if "ray" in p.name.lower() or "tune" in p.name.lower()
    ]


@pytest.mark.slow
def test_ray_asking_for_a_missing_gpu_is_one_line(tmp_path):
    pytest.importorskip("ray")
    args = [*args_of("builtin"), "--trials.executor", "ray", "--ray.gpus_per_trial", "1"]
    code, _, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 2 and err.count("\n") == 1 and "ray.gpus_per_trial = 1" in err


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


SLOW = ["--data.n_samples", "2048", "--data.batch_size", "16", "--model.hidden_dims", "[32]",
        "--trials.lrs", "[0.03, 0.01, 0.003, 0.001]", "--trials.max_epochs", "6",
        "--trials.batched", "false", "--trials.executor", "processes", "--trials.workers", "2",
        "--finder.enabled", "false"]  # fmt: skip


@pytest.fixture(scope="module")
def slow_inline(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("slow")
    args = [a if a != "processes" else "inline" for a in SLOW]
    code, _, err = run_cli([*args, "--out", str(folder)])
    assert code == 0, err
    return json.loads((only_run_dir(folder) / "results.json").read_text())


def test_a_killed_worker_is_reported_and_resume_finishes(tmp_path, slow_inline):
    proc = spawn(SLOW, tmp_path)
    wait_for(lambda: len(children(proc.pid)) >= 2)
    time.sleep(0.3)
    os.kill(children(proc.pid)[0], signal.SIGKILL)  # out of memory, say
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert err.count("\n") == 1 and "a worker process died" in err
    run_dir = only_run_dir(tmp_path)
    partial = json.loads((run_dir / "results.json").read_text())
    assert partial["status"] == "failed" and partial["pending"]
    assert not children(proc.pid)
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    assert metrics(json.loads((run_dir / "results.json").read_text())) == metrics(slow_inline)


def test_ctrl_c_stops_the_workers_and_resume_finishes(tmp_path, slow_inline):
    proc = spawn(SLOW, tmp_path, start_new_session=True)
    wait_for(lambda: len(children(proc.pid)) >= 2)
    workers = children(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "no orphan worker"
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "results.json").read_text())["status"] == "interrupted"
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    assert metrics(json.loads((run_dir / "results.json").read_text())) == metrics(slow_inline)


def test_auto_runs_workers_only_when_they_pay():
    assert not pool_pays(0.2, 10, 2)  # 1 s saved: not worth starting workers
    assert pool_pays(2.0, 10, 2)  # 10 s saved
    assert not pool_pays(30.0, 1, 2)  # one trial left: nothing to share
    assert not pool_pays(30.0, 10, 1)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_one_trial_per_gpu(tmp_path, inline_runs):
    args = [*args_of("builtin"), "--trials.executor", "processes", "--trainer.accelerator", "gpu"]
    code, _, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    res = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert res["status"] == "complete" and not res["pending"]
    # Every trial trained (on a GPU: the same numbers as on the CPU, to float32's tolerance).
    cpu = {t["name"]: t for t in inline_runs["builtin"]["trials"]}
    assert {t["name"] for t in res["trials"]} == set(cpu)
    for trial in res["trials"]:
        if not trial["diverged"]:
            assert trial["val_loss"] == pytest.approx(cpu[trial["name"]]["val_loss"], rel=1e-3)


def test_threads_are_decided_once_from_the_config_and_recorded(monkeypatch, inline_runs):
    import lr_lab.executors
    import lr_lab.training.trainer
    from lr_lab.executors import run_threads
    from tests.conftest import tiny_config

    monkeypatch.setattr(lr_lab.executors, "usable_cores", lambda: 8)
    monkeypatch.setattr(lr_lab.training.trainer, "usable_cores", lambda: 8)
    cfg = tiny_config().cfg
    assert run_threads(cfg.trials, cfg.ray, 10_000) == 1  # small: one thread, whatever the executor
    big = 5_000_000
    for executor, workers, expected in [("inline", None, 8), ("processes", 2, 4),
                                        ("auto", None, 1), ("processes", None, 1)]:  # fmt: skip
        cfg.trials.executor, cfg.trials.workers = executor, workers
        assert run_threads(cfg.trials, cfg.ray, big) == expected, executor
    cfg.trials.executor, cfg.ray.cpus_per_trial = "ray", 3.0
    assert run_threads(cfg.trials, cfg.ray, big) == 3
    cfg.trials.threads = 2
    assert run_threads(cfg.trials, cfg.ray, big) == 2
    res = inline_runs["builtin"]
    assert {t["threads"] for t in res["trials"]} == {f["threads"] for f in res["finders"]} == {1}


def test_a_resume_trains_on_the_threads_the_run_started_with(tmp_path, monkeypatch):
    # Started where big models got 2 threads; resumed under `taskset -c 0`, where they would get
    # 1: the resumed trial must train on 2, or its numbers differ from the uninterrupted run's.
    import lr_lab.training.trainer

    code, _, err = run_cli([*TINY_ARGS, "--finder.enabled", "false", "--out", str(tmp_path)])
    assert code == 0, err
    run_dir = only_run_dir(tmp_path)
    path = run_dir / "results.json"
    res = json.loads(path.read_text())
    assert res["threads"] == 1
    res["threads"], res["trials"] = 2, res["trials"][:-1]
    path.write_text(json.dumps(res))
    monkeypatch.setattr(lr_lab.training.trainer, "usable_cores", lambda: 1)
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    res = json.loads(path.read_text())
    assert res["threads"] == 2 and res["trials"][-1]["threads"] == 2


def test_an_interrupt_survives_the_trip_from_a_worker():
    # A worker hands its exception back pickled; unpicklable, it broke the pool instead.
    import pickle

    from lr_lab.interrupt import Interrupted

    back = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert (
        isinstance(back, Interrupted) and back.signum == signal.SIGTERM and str(back) == "SIGTERM"
    )
