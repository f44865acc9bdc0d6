"""Nothing left behind, nothing silently wrong: exits, kills, endless steps, threads, resumes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import types
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
    # print(results) in a script shows what the command line prints, not the dataclass's fields.
    shown = str(alone).splitlines()
    assert shown[0].startswith("rank") and shown[-1] == f"Run folder: {alone.run_dir}"
    assert len(str(alone)) < 3000 and "Best fixed LR: 0.05" in str(alone)
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
        "t.start()\n"
        # Once results.json exists the run has its turn (no sleep: a loaded machine may take
        # longer than any fixed time to import Lightning and open the folder).
        f"while t.is_alive() and not list(__import__('pathlib').Path({str(tmp_path)!r})"
        ".glob('*/results.json')):\n    time.sleep(0.01)\n"
        "sys.exit(0)  # the main thread ends: the interpreter stops\n"
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


# ------------------------------------------------------------------ issue 21: what a user sees


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lr-lab: error: "), err
    return lines[0]


ALIAS_BOMB = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")
)  # 9**9 values once expanded, in 300 bytes


def test_an_alias_bomb_given_as_config_is_one_line_exit_2_and_nothing_written(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    out = tmp_path / "runs"
    code, printed, err = run_cli(["--config", str(bomb), "--out", str(out)])
    assert code == 2 and printed == "" and not out.exists()
    assert "its aliases expand to more than 100,000 values" in one_line(err)


def test_finder_num_training_is_bounded(tmp_path):
    out = tmp_path / "runs"
    code, printed, err = run_cli(["--finder.num_training", "100000000", "--print_config",
                                  "--out", str(out)])  # fmt: skip
    assert code == 2 and printed == "" and not out.exists()
    assert one_line(err).startswith(
        "lr-lab: error: finder.num_training = 100000000: must be <= 10,000"
    )
    code, printed, _ = run_cli(["--finder.num_training", "10000", "--print_config"])
    assert code == 0 and "num_training: 10000" in printed  # the bound itself is allowed


# A signal while the command line is parsed: before any run has its turn, so the signal's own
# default action applies (a stop request recorded now would only be read once a run is under
# way, after its folder was made).
SIGNAL_WHILE_PARSING = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
import lr_lab.config.command_line as command_line
from lr_lab.cli import main
parse_argv = command_line.parse_argv
def parse_and_signal(argv):
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return parse_argv(argv)
command_line.parse_argv = parse_and_signal
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_parsing_stops_the_process_before_any_folder(tmp_path, sig):
    out = tmp_path / "runs"
    args = [*TINY_ARGS, "--finder.enabled", "false", "--search.enabled", "false", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_PARSING, sig, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert not out.exists(), proc.stderr[-2000:]
    if sig == "SIGINT":
        assert proc.returncode == 130 and proc.stdout == ""
        assert one_line(proc.stderr).endswith("interrupted by Ctrl-C before the run started; "
                                              "nothing written")  # fmt: skip
    else:
        assert proc.returncode == -signal.SIGTERM, proc.stderr[-2000:]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow  # a whole process's life: in CI's slow suite, not the default
def test_a_killed_lab_takes_workers_stuck_in_a_step_with_it(tmp_path):
    # Workers in an endless training_step never read their pipe again: only the kernel
    # (PR_SET_PDEATHSIG) can end them when the lab is killed.
    args = [*USER_ARGS, "--model.class_path", "tests.user_modules.EndlessStep",
            "--trials.lrs", "[0.05, 0.03]", "--trials.executor", "processes",
            "--trials.workers", "2", "--finder.enabled", "false"]  # fmt: skip
    proc = spawn(args, tmp_path)
    workers: list[int] = []
    try:
        wait_for(lambda: len(children(proc.pid)) >= 2, timeout=120)
        workers = children(proc.pid)
        # Both busy with their trial, so both reach the endless step: a second of CPU each (an
        # idle worker waits on its pipe and uses none).
        wait_for(lambda: all(cpu_seconds(pid) >= 1.0 for pid in workers), timeout=120)
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): a live worker holds the lab's pipes
        assert not wait_gone(workers, 30), "a worker stuck in a step outlived the lab"
    finally:
        for pid in alive(workers):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_resume_takes_where_trials_run_and_nothing_else(tmp_path):
    args = [*TINY_ARGS, "--trials.max_epochs", "2", "--finder.enabled", "false",
            "--search.enabled", "false", "--out", str(tmp_path)]  # fmt: skip
    assert run_cli(args)[0] == 0
    run_dir = only_run_dir(tmp_path)
    where = ["--trials.executor", "inline", "--trials.workers", "1", "--ray.address", "auto",
             "--ray.cpus_per_trial", "2", "--ray.gpus_per_trial", "0"]  # fmt: skip
    code, printed, err = run_cli(["--resume", str(run_dir), *where])
    assert code == 0 and err == "" and "nothing to do" in printed
    # What --resume may change is checked as when the run started.
    for bad, key in ((["--trials.workers", "0"], "trials.workers = 0"),
                     (["--ray.cpus_per_trial", "-1"], "ray.cpus_per_trial = -1")):  # fmt: skip
        code, printed, err = run_cli(["--resume", str(run_dir), *bad])
        assert code == 2 and printed == "" and one_line(err).startswith(f"lr-lab: error: {key}")
    for other in (["--trials.max_epochs", "3"], ["--seed", "1"], ["--ray.bogus", "1"]):
        code, printed, err = run_cli(["--resume", str(run_dir), *where[:2], *other])
        assert code == 2 and printed == ""
        assert "takes no other options but where trials run" in one_line(err)
        assert f"got {other[0]}" in err


def test_bad_input_creates_no_runs_folder_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (
        ["--trials.max_epochs", "0"],
        ["--model", "tests.user_modules.NoLR", "--data", "tests.user_modules.TinyData"],
    ):
        code, _, err = run_cli(args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert list(tmp_path.iterdir()) == [], args


def test_help_advertises_only_the_print_config_mode_the_tool_takes(tmp_path):
    code, printed, err = run_cli(["--help"])
    assert code == 0 and err == ""
    assert "--print_config=skip_check" in printed
    for refused in ("skip_default", "skip_unset", "skip_null", "[=flags]"):
        assert refused not in printed, refused
        code, _, err = run_cli([f"--print_config={refused}", "--out", str(tmp_path)])
        assert code == 2 and "unknown mode" in one_line(err)


@pytest.mark.parametrize(
    "argv0, typed",
    [("scripts/run.py", "python scripts/run.py"),  # python scripts/run.py, from the checkout
     (str(ROOT / "scripts" / "run.py"), "python scripts/run.py"),
     ("/usr/local/bin/lr-lab", "lr-lab")],  # the console script
)  # fmt: skip
def test_the_resume_hint_is_the_command_the_user_typed(tmp_path, monkeypatch, argv0, typed):
    import lr_lab.report.files

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(
        lr_lab.report.files, "plot_loss_curves",
        lambda *a: (os.kill(os.getpid(), signal.SIGINT), lr_lab.interrupt.check()),
    )  # fmt: skip
    args = [*TINY_ARGS, "--trials.max_epochs", "2", "--finder.enabled", "false",
            "--search.enabled", "false", "--out", str(tmp_path)]  # fmt: skip
    code, _, err = run_cli(args)
    assert code == 130
    hint = f"Finish with: {typed} --resume {shlex.quote(str(only_run_dir(tmp_path)))}"
    assert one_line(err).endswith(hint), err


def test_the_resume_hint_of_python_dash_m(monkeypatch):
    from lr_lab.cli import command

    main = types.ModuleType("__main__")
    main.__spec__ = importlib.util.find_spec("lr_lab.cli")  # as `python -m lr_lab.cli` sets it
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "lr_lab" / "cli.py")])
    assert command() == "python -m lr_lab.cli"


class _ManyLines:
    def __repr__(self) -> str:
        return "ManyLines(\n  a=1,\n  b=2,\n)"


@pytest.mark.parametrize("section", ["model", "datamodule"])
def test_a_usage_error_about_an_object_is_one_line(tmp_path, section):
    from tests.user_modules import TinyData, TinyNet

    multi = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    assert "\n" in repr(multi)
    config = {"trials": {"lrs": [0.05], "max_epochs": 1}, "finder": {"enabled": False}}
    for wrong in (multi, _ManyLines()):
        objects = {"model": TinyNet, "datamodule": TinyData, section: wrong}
        with pytest.raises(lr_lab.UsageError) as err:
            lr_lab.run(config, out=tmp_path / "runs", quiet=True, **objects)
        message = str(err.value)
        assert "\n" not in message and "ManyLines" not in message and "Linear" not in message
        assert message.startswith("model: not a LightningModule" if section == "model"
                                  else "data: not a LightningDataModule")  # fmt: skip
    assert not (tmp_path / "runs").exists()


def available_gib() -> float:
    from lr_lab.config.memory import available_memory

    free = available_memory()
    return math.inf if free is None else free / 2**30


# Under `ulimit -v`: the address space left, VmSize + 512 MiB at the start, is what counts.
UNDER_RLIMIT_AS = """
import resource, sys
vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20, vm + 512 * 2**20))
from lr_lab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_memory_check_counts_the_address_space_limit(tmp_path):
    # 64 million parameters need about 0.95 GiB to train: more than the limit leaves (under
    # 0.5 GiB), less than this machine has.
    if available_gib() < 2:
        pytest.skip("needs 2 GiB free without the limit")
    out = tmp_path / "runs"
    args = ["--model.hidden_dims", "[8000, 8000]", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", UNDER_RLIMIT_AS, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    line = one_line(proc.stderr)
    assert (
        "model.init_args.hidden_dims = [8000, 8000]: 64,032,001 parameters need about 0.954 GiB"
        in line
    )
    assert "is available" in line and not out.exists()


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_the_memory_check_counts_the_containers_limit(tmp_path, monkeypatch, version):
    import lr_lab.config.memory

    if available_gib() < 2:
        pytest.skip("needs 2 GiB free outside the container limit")
    cgroup = tmp_path / "cgroup"
    limit, used = (("memory.max", "memory.current") if version == "v2" else
                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))  # fmt: skip
    (cgroup / limit).parent.mkdir(parents=True, exist_ok=True)
    (cgroup / limit).write_text(f"{2**30}\n")
    (cgroup / used).write_text(f"{2**30 - 64 * 2**20}\n")  # 64 MiB left in the container
    monkeypatch.setattr(lr_lab.config.memory, "CGROUP", cgroup)
    out = tmp_path / "runs"
    args = ["--model.hidden_dims", "[3000, 3000]", "--trials.lrs", "[0.01]",
            "--trials.max_epochs", "1", "--finder.enabled", "false", "--search.enabled", "false",
            "--out", str(out)]  # fmt: skip
    code, printed, err = run_cli(args)  # 9 million parameters: 0.134 GiB to train
    assert code == 2 and printed == "" and not out.exists()
    assert one_line(err).endswith("9,012,001 parameters need about 0.134 GiB to train; 0.0625 GiB is "
                                  "available")  # fmt: skip


def test_a_run_started_in_a_thread_while_python_shuts_down_stops_at_once(monkeypatch):
    from lr_lab import interrupt

    def shutting_down(_):
        raise RuntimeError("can't register atexit after shutdown")

    monkeypatch.setattr(threading, "_register_atexit", shutting_down)
    seen = []

    def run() -> None:
        with interrupt.run_turn():
            seen.append(interrupt.requested())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [signal.SIGINT]  # its first step stops it: nothing waits for it at exit


def test_a_stopped_runs_message_names_a_few_of_what_is_left():
    from lr_lab.cli import left_text

    assert left_text([]) == "nothing"
    assert left_text(["seed0/report"]) == "seed0/report"
    many = [f"seed0/{i:04d}_lr={i}" for i in range(38)]
    assert left_text(many) == ", ".join(many[:4]) + " and 34 more"
