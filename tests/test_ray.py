"""The ``ray`` executor with real processes and real signals: a killed lab leaves no Ray behind,
workers are reused, a killed worker is one line naming what is unfinished, Ctrl-C stops.

The private Ray's processes are found the way ``ps`` would: every live process that names the
session folder on its command line or holds a file in it open (Ray's agents and workers are
retitled ``ray::...``, but their logs are in the folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lr_lab.config.schema import RayConfig
from tests.conftest import TINY_ARGS, only_run_dir
from tests.test_run_folder import ROOT, run_cli, wait_for
from tests.test_user_modules import USER_ARGS

pytest.importorskip("ray")

# Trials of a second or more, so a signal lands mid-trial.
LONG = [*TINY_ARGS, "--data.n_samples", "2048", "--data.batch_size", "16",
        "--model.hidden_dims", "[32]", "--trials.max_epochs", "20", "--trials.batched", "false",
        "--finder.enabled", "false", "--trials.executor", "ray"]  # fmt: skip
SIX = ["--trials.lrs", "[0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]"]


def state(pid: int) -> str | None:
    """The process's state letter, or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pids) -> list[int]:  # noqa: ANN001
    """Those still running (a zombie nobody reaped is dead)."""
    return [pid for pid in pids if state(pid) not in (None, "Z")]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return alive(found)


def session_processes(folder: Path) -> dict[int, str]:
    """The live processes of the Ray session in ``folder``: pid -> title."""
    inside = f"{folder}/"
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            mine = any(inside in a or a.endswith(str(folder)) for a in args)
            if not mine:
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd).startswith(inside):
                            mine = True
                            break
            if mine and alive([int(entry.name)]):
                found[int(entry.name)] = args[0].strip()
    return found


def trial_workers(folder: Path) -> list[int]:
    """The session's actor processes that are training a trial now."""
    procs = session_processes(folder)
    return [pid for pid, title in procs.items() if title.startswith("ray::TrialWorker.run")]


class Lab:
    """``scripts/run.py ARGS --out OUT`` in a subprocess, its output collected as it comes."""

    def __init__(self, args: list[str], out: Path, **kwargs) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/run.py"), *args, "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=lambda s=s, to=to: to.extend(s), daemon=True)
            for s, to in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    def folder(self) -> Path:
        """Its private Ray's folder (its raylet's ``--temp_dir``), once the raylet runs."""
        found: list[Path] = []

        def look() -> bool:
            for pid in children(self.proc.pid):
                with contextlib.suppress(OSError):
                    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                    found.extend(
                        Path(a.split("=", 1)[1]) for a in args if a.startswith("--temp_dir=")
                    )
            return bool(found)

        wait_for(look, timeout=120)
        assert found[0].parent == Path(tempfile.gettempdir()), found
        return found[0]

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code, "".join(self.out), "".join(self.err)


def status(out: Path) -> dict:
    return json.loads((only_run_dir(out) / "results.json").read_text())


def nothing_left(folder: Path, before: dict[int, str], seconds: float) -> None:
    """No process of the session alive and its folder gone, within ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive(before) or folder.exists():
        if time.monotonic() > deadline:
            left = {pid: before[pid] for pid in alive(before)}
            pytest.fail(f"left after {seconds} s: {left}, folder exists: {folder.exists()}")
        time.sleep(0.05)
    assert not session_processes(folder)  # nor one that started meanwhile


@pytest.mark.slow
def test_a_killed_lab_leaves_no_ray_process_and_no_folder(tmp_path):
    # Ray kills its GCS server and raylet with the driver, but its agents waited a minute for
    # the dead GCS, and the folder stayed for good.
    lab = Lab(LONG, tmp_path)
    folder = lab.folder()
    wait_for(lambda: trial_workers(folder), timeout=180)
    before = session_processes(folder)
    assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= set(before.values()), before
    os.kill(lab.proc.pid, signal.SIGKILL)
    lab.finish()
    nothing_left(folder, before, seconds=5)


def test_a_private_ray_folder_left_behind_is_swept_at_the_next_start(tmp_path, monkeypatch):
    # Its janitor killed as well (say, by the OOM killer): the next start removes the folder and
    # what still runs from it, and leaves alone a folder in use, or one that is not the lab's.
    from lr_lab.executors.ray_folder import LOCK, SESSION_PREFIX
    from lr_lab.executors.ray_folder import private_folder as _private_folder

    def session(name: str) -> tuple[Path, subprocess.Popen]:
        folder = tmp_path / f"{SESSION_PREFIX}{name}"
        (folder / "logs").mkdir(parents=True)
        (folder / LOCK).touch()
        with open(folder / "logs" / "worker.out", "w") as log:  # a Ray worker, say
            return folder, subprocess.Popen(["sleep", "60"], stdout=log)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale, orphan = session("999999_stale")
    live, neighbour = session(f"{os.getpid()}_live")
    other = tmp_path / f"{SESSION_PREFIX}unlocked"
    other.mkdir()
    try:
        with open(live / LOCK, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # a run using it
            with _private_folder() as mine:
                assert not stale.exists() and orphan.wait(timeout=5) == -signal.SIGKILL
                assert live.exists() and neighbour.poll() is None and other.exists()
                assert Path(mine).parent == tmp_path and (Path(mine) / LOCK).exists()
        assert not Path(mine).exists() and live.exists()
    finally:
        neighbour.kill()
        neighbour.wait()


@pytest.mark.slow
def test_trials_reuse_a_worker_per_core_and_a_run_leaves_nothing(tmp_path):
    results = Path.home() / "ray_results"
    had = sorted(results.iterdir()) if results.exists() else None
    lab = Lab([*LONG, *SIX, "--trials.max_epochs", "3"], tmp_path)
    folder = lab.folder()
    seen: dict[int, str] = {}
    while lab.proc.poll() is None:
        seen.update(session_processes(folder))
        time.sleep(0.02)
    code, out, err = lab.finish()
    assert code == 0, err
    assert len(status(tmp_path)["trials"]) == 6 and out.count("(ray)") == 6
    workers = {pid for pid, title in seen.items() if title.startswith("ray::TrialWorker")}
    assert 1 <= len(workers) <= len(os.sched_getaffinity(0)), seen  # not one per trial
    nothing_left(folder, seen, seconds=5)
    assert (sorted(results.iterdir()) if results.exists() else None) == had


@pytest.mark.slow
def test_a_killed_ray_worker_is_one_line_naming_the_unfinished_trials(tmp_path):
    lab = Lab([*LONG, *SIX], tmp_path)
    folder = lab.folder()
    wait_for(lambda: any("[1/6]" in line for line in lab.out), timeout=180)
    wait_for(lambda: trial_workers(folder), timeout=60)
    before = session_processes(folder)
    os.kill(trial_workers(folder)[0], signal.SIGKILL)  # out of memory, say
    code, out, err = lab.finish()
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("lr-lab: error: a Ray worker process died"), err
    assert "(raylet)" not in out and "\x1b[" not in out, out  # nothing of Ray's
    res = status(tmp_path)
    assert res["status"] == "failed" and res["trials"] and res["pending"]
    listed = lines[0].split("unfinished: ")[1].split(" (details")[0].split(", ")
    assert sorted(listed) == sorted(res["pending"])
    nothing_left(folder, before, seconds=5)


@pytest.mark.slow
def test_ctrl_c_stops_ray_trials_promptly_and_leaves_them_pending(tmp_path):
    lab = Lab([*LONG, *SIX], tmp_path, start_new_session=True)
    folder = lab.folder()
    wait_for(lambda: trial_workers(folder), timeout=180)
    before = session_processes(folder)
    asked = time.monotonic()
    os.killpg(lab.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    code, _, err = lab.finish()
    assert code == 130 and "Traceback" not in err, err
    assert time.monotonic() - asked < 15  # Ray's shutdown included
    res = status(tmp_path)
    assert res["status"] == "interrupted" and len(res["pending"]) >= 4
    nothing_left(folder, before, seconds=5)


@pytest.mark.slow
def test_sys_exit_in_a_trial_on_ray_is_one_line_naming_the_trial(tmp_path):
    # Ray takes a SystemExit in an actor for the actor's own exit: it must stay the trial's.
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.ExitsInStep",
            "--trials.executor", "ray", "--finder.enabled", "false", "--out", str(tmp_path)]  # fmt: skip
    code, _, err = run_cli(args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "seed0/" in lines[0] and "SystemExit: 3" in lines[0]
    assert status(tmp_path)["status"] == "failed"


def test_as_many_workers_as_trials_fit_side_by_side():
    from lr_lab.executors.ray import _slots

    assert _slots({"CPU": 2.0}, RayConfig(cpus_per_trial=1), 8) == 2
    assert _slots({"CPU": 2.0}, RayConfig(cpus_per_trial=0.5), 3) == 3  # no more than trials
    assert _slots({"CPU": 16.0, "GPU": 2.0}, RayConfig(gpus_per_trial=1), 8) == 2
    assert _slots({"CPU": 3.0}, RayConfig(cpus_per_trial=0.3), 100) == 10  # 3 / 0.3, not 9
    assert _slots({}, RayConfig(), 8) == 1  # a cluster still to grow: one waits for it
    assert _slots({"CPU": 2.0}, RayConfig(cpus_per_trial=0), 5) == 5
