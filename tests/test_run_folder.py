"""No corner where a report can be lost: atomic files, the lock, damaged and edited run folders,
full disks, broken pipes, and signals at awkward moments; --resume repairs what is missing."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import lr_lab.analysis.results
import lr_lab.finder.lr_find
from lr_lab.experiment.folder import RunLock, new_run_dir
from lr_lab.training.initial_state import weights_sha256
from tests.conftest import TINY_ARGS, only_run_dir, run_cli, track
from tests.test_robustness import metrics

ROOT = Path(__file__).resolve().parent.parent
FAST = [*TINY_ARGS, "--trials.max_epochs", "2"]


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> tuple[Path, dict]:
    """A complete tiny run, copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("done")
    code, _, err = run_cli([*FAST, "--out", str(out)])
    assert code == 0, err
    run_dir = only_run_dir(out)
    return run_dir, json.loads((run_dir / "results.json").read_text())


@pytest.fixture
def copy(done, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(done[0], target)
    return target


def one_error_line(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lr-lab: error: "), err
    assert fragment in lines[0], err


def spawn(args: list[str], out: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return track(subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/run.py"), *args, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    ))  # fmt: skip


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def pending_of(run_dir_glob: Path) -> list[str] | None:
    found = list(run_dir_glob.glob("*/results.json"))
    if not found:
        return None
    try:
        return json.loads(found[0].read_text())["pending"]
    except (json.JSONDecodeError, KeyError):
        return None


# ------------------------------------------------------------------ files and the report


def test_files_are_readable_and_no_temporary_file_is_left(done):
    run_dir, _ = done
    for name in ("results.json", "config.yaml", "loss_curves.png", "seed0/init.ckpt"):
        mode = stat.S_IMODE((run_dir / name).stat().st_mode)
        assert mode & 0o044 == 0o044, (name, oct(mode))  # not mkstemp's 0600
    assert not [p for p in run_dir.rglob("*") if "tmp" in p.name or p.name.startswith(".")]


def test_sigkill_during_the_report_then_resume_redraws_it(tmp_path, done):
    proc = spawn(FAST, tmp_path)
    wait_for(lambda: pending_of(tmp_path) == ["report"])
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    run_dir = only_run_dir(tmp_path)
    killed = json.loads((run_dir / "results.json").read_text())
    assert killed["status"] == "running" and killed["pending"] == ["report"]
    code, printed, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["status"] == "complete" and resumed["pending"] == []
    assert metrics(resumed) == metrics(done[1])
    for name, _sha in resumed["report"].items():
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob(f"*{'.lr_lab-tmp'}")) and not list(run_dir.glob(".report-*"))


def test_ctrl_c_during_the_report_is_resumable(tmp_path, monkeypatch, done):
    import lr_lab.report.files

    def interrupted_sweep(results, path):
        os.kill(os.getpid(), signal.SIGINT)
        raise lr_lab.interrupt.Interrupted(signal.SIGINT)

    monkeypatch.setattr(lr_lab.report.files, "plot_lr_sweep", interrupted_sweep)
    code, _, err = run_cli([*FAST, "--out", str(tmp_path)])
    assert code == 130 and "left: report" in err and "Traceback" not in err
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "results.json").read_text())["pending"] == ["report"]
    monkeypatch.undo()
    code, printed, _ = run_cli(["--resume", str(run_dir)])
    assert code == 0 and "Best fixed LR" in printed
    assert (run_dir / "lr_sweep.png").stat().st_size > 10_000


@pytest.mark.parametrize("damage", ["delete", "empty", "garbage"])
def test_resume_redraws_a_missing_or_damaged_report_file(copy, damage):
    png = copy / "lr_sweep.png"
    original = png.read_bytes()
    if damage == "delete":
        png.unlink()
    else:
        png.write_bytes(b"" if damage == "empty" else b"not a png")
    code, printed, err = run_cli(["--resume", str(copy)])
    assert code == 0 and "redrew the report (lr_sweep.png)" in printed, err
    assert png.read_bytes() == original  # drawn again from results.json: the same picture


def test_a_stale_finder_scratch_folder_is_cleaned(copy):
    (copy / "seed0/.lr_find-stale").mkdir()
    (copy / "seed0/.lr_find-stale/.lr_find_x.ckpt").write_bytes(b"x")
    results = json.loads((copy / "results.json").read_text())
    results["trials"] = results["trials"][:1]
    (copy / "results.json").write_text(json.dumps(results))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 0, err
    assert not list(copy.rglob(".lr_find*"))


# ------------------------------------------------------------------ the lock


def test_a_second_process_gets_in_use(copy):
    with RunLock(copy):
        code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2
    one_error_line(err, f"in use by pid {os.getpid()}")


def test_a_forked_worker_does_not_keep_the_lock(tmp_path):
    # A worker shares its parent's open folder: were it to keep the flock, a worker outliving a
    # killed parent would leave the folder "in use" (the study's --resume was refused so).
    lock = RunLock(tmp_path).acquire()
    ready, started = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker (its fork hooks have run): alive while the parent lets go
        os.write(started, b"x")
        time.sleep(10)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"x"
        lock.release()
        RunLock(tmp_path).acquire().release()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready)
        os.close(started)


def test_runs_started_together_get_distinct_folders(tmp_path):
    barrier = threading.Barrier(8)
    made: list[Path] = []

    def make() -> None:
        barrier.wait()
        made.extend(new_run_dir(tmp_path, "x") for _ in range(10))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 80 and all(p.is_dir() for p in made)


@pytest.mark.slow  # a whole process's life: in CI's slow suite, not the default
def test_two_processes_started_together(tmp_path):
    args = [*FAST, "--finder.enabled", "false", "--trials.lrs", "[0.05]"]
    procs = [spawn(args, tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        assert json.loads((folder / "results.json").read_text())["status"] == "complete"


# ------------------------------------------------------------------ damaged or edited folders


DAMAGED = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "a list": lambda text: "[]",
    "null": lambda text: "null",
    "missing name": lambda text: text.replace('"name": "0870_lr=0.05"', '"nome": "x"', 1),
    "unknown key": lambda text: text.replace('"status":', '"colour": 1, "status":', 1),
    "lr not a number": lambda text: text.replace('"lr": 0.05', '"lr": "abc"', 1),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_results_json_is_one_line(copy, case):
    path = copy / "results.json"
    path.write_text(DAMAGED[case](path.read_text()))
    before = path.read_bytes()
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2 and "Traceback" not in err
    one_error_line(err, "results.json")
    assert path.read_bytes() == before  # nothing written


def test_results_json_with_a_byte_order_mark_is_read(copy):
    path = copy / "results.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    code, printed, err = run_cli(["--resume", str(copy)])
    assert code == 0 and "nothing to do" in printed, err


def test_a_hand_appended_trial_is_refused(copy):
    path = copy / "results.json"
    results = json.loads(path.read_text())
    fake = {**results["trials"][0], "name": "0948_lr=0.3", "lr": 0.3, "final_val_loss": 1e-9}
    results["trials"].append(fake)
    path.write_text(json.dumps(results))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2
    one_error_line(err, "trial seed0/0948_lr=0.3 (lr 0.3) is not in this run's plan")


@pytest.mark.parametrize("field, value", [("lr", 0.02), ("role", "finder_check")])
def test_a_trial_edited_in_place_is_refused(copy, field, value):
    # The name stays, the LR changes: the table would say "Best fixed LR: 0.02", never trained.
    path = copy / "results.json"
    results = json.loads(path.read_text())
    trial = results["trials"][0]
    trial[field] = value
    path.write_text(json.dumps(results))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2
    one_error_line(err, f"trial seed0/{trial['name']} is recorded as")


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_resume_of_a_complete_run_remakes_its_init_ckpt(copy, done, damage):
    # The replay recipe starts from init.ckpt: a complete run without one is not intact.
    path = copy / "seed0" / "init.ckpt"
    original = path.read_bytes()
    path.unlink() if damage == "deleted" else path.write_bytes(original[:10])
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 0, err
    state = torch.load(path, weights_only=True)["state_dict"]
    assert weights_sha256(state) == done[1]["init_sha256"]["0"]
    assert metrics(json.loads((copy / "results.json").read_text())) == metrics(done[1])


def test_an_init_ckpt_with_other_weights_is_refused_on_resume(copy):
    path = copy / "seed0" / "init.ckpt"
    state = torch.load(path, weights_only=True)
    state["state_dict"] = {k: v + 1 for k, v in state["state_dict"].items()}
    torch.save(state, path)
    code, _, err = run_cli(["--resume", str(copy)])
    assert code != 0
    one_error_line(err, "weights changed since the run recorded them")


def test_resume_trains_again_a_trial_whose_curves_were_deleted(copy, done):
    results = done[1]
    fixed = next(t for t in results["trials"] if t["role"] == "fixed")
    check = next(t for t in results["trials"] if t["role"] == "finder_check")
    for trial in (fixed, check):
        for events in (copy / trial["tb_run"]).glob("events.out.tfevents.*.lr_lab"):
            events.unlink()
    code, printed, err = run_cli(["--resume", str(copy)])
    assert code == 0, err
    assert fixed["name"] in printed and check["name"] in printed  # trained again, said so
    for trial in (fixed, check):
        assert list((copy / trial["tb_run"]).glob("events.out.tfevents.*.lr_lab"))
    assert metrics(json.loads((copy / "results.json").read_text())) == metrics(results)


def test_complete_status_on_a_partial_run_is_finished(copy, done):
    path = copy / "results.json"
    results = json.loads(path.read_text())
    results["trials"] = results["trials"][:2]  # still says "complete"
    path.write_text(json.dumps(results))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 0, err
    assert metrics(json.loads(path.read_text())) == metrics(done[1])


@pytest.mark.parametrize(
    ("key", "old", "new"),
    [("noise_std", "0.1", "0.2"), ("seed", "0", "1"), ("early_stop_threshold", "4.0", "null")],
)
def test_an_edited_config_is_refused_naming_the_key(copy, key, old, new):
    path = copy / "config.yaml"
    text = path.read_text()
    assert f"{key}: {old}\n" in text
    path.write_text(text.replace(f"{key}: {old}\n", f"{key}: {new}\n", 1))
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 2
    one_error_line(err, "config.yaml differs from the config this run started with")
    assert f"{key}: " in err and "Traceback" not in err


# ------------------------------------------------------------------ full disks and pipes


def test_disk_full_mid_run_is_one_line_and_the_status_is_truthful(tmp_path, monkeypatch):
    real = lr_lab.analysis.results.atomic_write
    calls = {"n": 0}

    def full_once(path, data, exclusive=False):
        calls["n"] += 1
        if calls["n"] == 3:  # the first trial's record
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, exclusive)

    monkeypatch.setattr(lr_lab.analysis.results, "atomic_write", full_once)
    code, _, err = run_cli([*FAST, "--out", str(tmp_path)])
    assert code == 1 and "Traceback" not in err
    one_error_line(err, "results.json: No space left on device")
    results = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert results["status"] == "failed" and "No space left" in results["error"]


def test_read_only_run_folder_on_resume(copy, monkeypatch):
    import lr_lab.atomic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir") or args[-1])

    results = json.loads((copy / "results.json").read_text())
    results["trials"] = results["trials"][:1]
    (copy / "results.json").write_text(json.dumps(results))
    monkeypatch.setattr(lr_lab.atomic.tempfile, "mkstemp", read_only)
    code, _, err = run_cli(["--resume", str(copy)])
    assert code == 1 and "Traceback" not in err
    one_error_line(err, "Read-only file system")


def test_out_folder_on_a_full_disk_is_bad_input(tmp_path):
    def tiny_file_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    proc = spawn(FAST, tmp_path / "runs", preexec_fn=tiny_file_limit)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "File too large" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow  # a whole process's life: in CI's slow suite, not the default
def test_a_closed_pipe_does_not_stop_the_run(tmp_path):
    proc = spawn(FAST, tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `lr-lab | head -1` does
    proc.wait(timeout=120)
    err = proc.stderr.read()
    assert first.startswith("lr-lab: run folder") and proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "results.json").read_text())["status"] == "complete"


# ------------------------------------------------------------------ signals at awkward moments


def test_ctrl_c_during_the_finder_lists_the_finder_and_its_checks(tmp_path, monkeypatch, done):
    original = lr_lab.finder.lr_find._RawLoss.__call__

    def stop_at_step_5(self, outputs, batch, batch_idx):
        if len(self.losses) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, outputs, batch, batch_idx)

    monkeypatch.setattr(lr_lab.finder.lr_find._RawLoss, "__call__", stop_at_step_5)
    code, _, err = run_cli([*FAST, "--out", str(tmp_path)])
    assert code == 130 and "left: seed0/finder, seed0/finder checks, seed0/search" in err
    run_dir = only_run_dir(tmp_path)
    partial = json.loads((run_dir / "results.json").read_text())
    assert partial["pending"] == ["seed0/finder", "seed0/finder checks", "seed0/search"]
    assert not list(run_dir.rglob(".lr_find*"))
    monkeypatch.undo()
    code, _, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    assert metrics(json.loads((run_dir / "results.json").read_text())) == metrics(done[1])


def test_ctrl_c_while_loading_leaves_nothing(tmp_path):
    proc = spawn(FAST, tmp_path)
    time.sleep(0.4)  # inside the imports and the checks, before any run folder
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    if proc.returncode == 130:
        assert "nothing written" in err or "--resume" in err
    else:
        assert proc.returncode == 0  # it was already done: a fast machine


def test_sighup_leaves_a_resumable_run(tmp_path):
    proc = spawn(FAST, tmp_path)
    wait_for(lambda: (p := pending_of(tmp_path)) is not None and len(p) < 5)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP and "Traceback" not in err
    results = json.loads((only_run_dir(tmp_path) / "results.json").read_text())
    assert results["status"] == "interrupted"


def test_the_resume_hint_is_shell_quoted(tmp_path, monkeypatch):
    import lr_lab.report.files

    monkeypatch.setattr(
        lr_lab.report.files, "plot_lr_sweep",
        lambda *a: (os.kill(os.getpid(), signal.SIGINT), lr_lab.interrupt.check()),
    )  # fmt: skip
    out = tmp_path / "my runs"
    code, _, err = run_cli([*FAST, "--out", str(out)])
    assert code == 130
    run_dir = only_run_dir(out)
    assert f"--resume '{run_dir}'" in err


def test_a_batched_trial_whose_curves_were_deleted_is_trained_again_in_its_stack(tmp_path):
    args = [*FAST, "--trials.lrs", "[0.05, 0.01, 0.001, 5.0]", "--finder.enabled", "false"]
    code, _, err = run_cli([*args, "--out", str(tmp_path)])
    assert code == 0, err
    run_dir = only_run_dir(tmp_path)
    before = json.loads((run_dir / "results.json").read_text())
    assert all(t["batched"] for t in before["trials"])
    for events in (run_dir / before["trials"][0]["tb_run"]).glob("events.out.tfevents.*.lr_lab"):
        events.unlink()
    code, printed, err = run_cli(["--resume", str(run_dir)])
    assert code == 0, err
    assert printed.count("(batched") == 4  # the whole stack, so each copy gives its numbers
    assert metrics(json.loads((run_dir / "results.json").read_text())) == metrics(before)
