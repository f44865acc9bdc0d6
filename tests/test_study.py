"""The rule study: every regret traceable to its run folder, resumable, and its statistics."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lr_lab.analysis.records import TrialResult
from lr_lab.study.methods import equal_cost_grid, raced_grid, regret
from lr_lab.study.runner import main
from lr_lab.study.stats import Outcome, ProblemSeed, hit_interval, summarize
from tests.conftest import track

QUICK_PROBLEMS, FULL_PROBLEMS = 5, 41  # the bundled study (lr_lab/configs/study.yaml)
TINY_STUDY = """
seeds: [0]
grid: {from: 1.0e-3, to: 1.0, points: 4}
base: {trials.max_epochs: 3, data.n_samples: 160, model.hidden_dims: [8], finder.num_training: 30}
peers: [prodigy, optuna]
axes:
  function:
    linear: {data.function: linear}
    sine: {data.function: sine}
  optimizer:
    sgd: {model.optimizer: sgd}
    adam: {model.optimizer: adam}
"""


def run_study(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("study")
    (base / "tiny.yaml").write_text(TINY_STUDY)
    code, printed = run_study(["--config", str(base / "tiny.yaml"), "--out", str(base / "out")])
    assert code == 0, printed
    (root,) = (base / "out").iterdir()
    return root, json.loads((root / "study.json").read_text())


def test_study_writes_its_files_and_ranks_every_method(tiny_study):
    root, study = tiny_study
    assert {p.name for p in root.iterdir()} >= {"study.json", "study.md", "study.png", "runs"}
    assert len(study["records"]) == 4  # 2 x 2 problems, one seed
    kinds = {s["method"]: s["kind"] for s in study["ranking"]}
    rules = {f"{r}{c}" for r in ("lightning", "steep_log", "valley", "minimum_div10")
             for c in ("", "@corrected")}  # fmt: skip
    assert kinds == {**dict.fromkeys(rules, "rule"), "search": "search", "prodigy": "peer",
                     "optuna": "peer", "grid_equal_cost": "grid", "grid_raced": "grid"}  # fmt: skip
    for s in study["ranking"]:  # every hit rate with its interval and its n
        low, high = s["hit_ci"]
        assert low <= s["hit_rate"] <= high and s["n"] == 4 and s["n_problems"] == 4
    assert set(study["families"]) == {"regression"}
    md = (root / "study.md").read_text()
    assert "| method | hit rate" in md and "## Hit rate by family" in md
    assert (root / "study.png").stat().st_size > 10_000
    assert all(r["race"]["rungs"] for r in study["records"])  # every race, as it ran


def ema(values: list[float]) -> float:
    """The study's final value: the metric's EMA, weight 0.5 on the newest epoch."""
    average = values[0]
    for v in values[1:]:
        average = 0.5 * v + 0.5 * average
    return average


def test_every_regret_is_recomputed_from_the_run_folder_it_names(tiny_study):
    root, study = tiny_study
    checked = 0
    for record in study["records"]:
        results = json.loads((root / record["run_dir"] / "results.json").read_text())
        trials = {f"seed{t['seed']}/{t['name']}": t for t in results["trials"]}
        grid = [t for t in trials.values() if t["role"] == "fixed" and t["seed"] == record["seed"]]
        best = min(ema(t["val_loss"]) for t in grid if not t["diverged"])
        assert record["best_loss"] == best
        for method, outcome in record["outcomes"].items():
            if not outcome["trial"]:
                continue
            trial = trials[outcome["trial"]]
            assert trial["stop_epochs"] is None  # an answer is a full-budget trial
            if method != "prodigy":  # an LR-free optimizer's lr is its own
                assert math.isclose(trial["lr"], outcome["lr"])
            expected = "inf" if trial["diverged"] else ema(trial["val_loss"]) / best
            assert outcome["regret"] == expected, (record["problem"], method)
            assert outcome["steps"] > 0
            checked += 1
    assert checked >= 4 * 12


def test_a_study_resumes_what_is_missing(tiny_study, tmp_path):
    root, study = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "runs" / "sine-adam")  # as if killed before it ran
    results = copy / "runs" / "linear-sgd" / "results.json"
    data = json.loads(results.read_text())
    data["status"], data["trials"] = "interrupted", data["trials"][:2]  # as if killed mid-run
    results.write_text(json.dumps(data))
    code, _ = run_study(["--resume", str(copy)])
    assert code == 0
    again = json.loads((copy / "study.json").read_text())
    strip = lambda s: [{k: v for k, v in r.items() if k != "run_dir"} for r in s["records"]]  # noqa: E731
    assert strip(again) == strip(study) and again["ranking"] == study["ranking"]


def test_bad_study_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_STUDY.replace("trials.max_epochs: 3", "trials.max_epochs: 0"))
    assert main(["--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "trials.max_epochs = 0: must be a positive integer (4 problems: linear-sgd," in err
    assert not (tmp_path / "out").exists()


def record(regrets: dict[str, float | None], problem: str = "p", steps: int = 130):
    outcomes = {k: Outcome(None if v is None else 0.1, regret=v, steps=steps)
                for k, v in regrets.items()}  # fmt: skip
    return ProblemSeed(problem, 0, "runs/p", "regression", {}, 0.1, 1.0, 100, 1300, 10, outcomes)


def test_regret_hit_rate_failure_rates_and_cost():
    assert regret(2.0, 1.0, False, "min") == 2.0 and regret(None, 1.0, True, "min") == math.inf
    assert regret(0.0, 0.0, False, "min") == 1.0 and regret(0.1, 0.0, False, "min") == math.inf
    assert regret(0.9, 0.95, False, "max") == pytest.approx(2.0)  # an accuracy: the errors
    records = [record({"r": 1.0}), record({"r": 1.4}), record({"r": 3.0}),
               record({"r": math.inf}), record({"r": None})]  # fmt: skip
    s = summarize(records, "r", "rule")
    assert s.n == 5 and s.hits == 2 and s.hit_rate == pytest.approx(2 / 5)  # no answer: a miss
    assert s.diverged_rate == pytest.approx(1 / 5) and s.no_answer_rate == pytest.approx(1 / 5)
    assert s.median_regret == 1.4 and s.p90_regret == math.inf  # over the 4 answers
    assert s.cost == pytest.approx(30 / 1300)  # besides its 100-step answer, of a 13-LR grid
    assert s.profile[:4] == pytest.approx([1 / 5, 1 / 5, 2 / 5, 2 / 5])  # tau 1.1, 1.25, 1.5, 2


def test_the_hit_interval_resamples_problems_and_is_reproducible():
    # Two problems, one always right, one always wrong, 10 seeds each: a problem is one draw.
    records = [record({"r": 1.0}, "a") for _ in range(10)] + [
        record({"r": 9.0}, "b") for _ in range(10)]  # fmt: skip
    low, high = hit_interval(records, "r")
    assert (low, high) == (0.0, 1.0)  # with 2 problems, anything from none to all
    assert hit_interval(records, "r") == (low, high)
    many = [record({"r": 1.0 if i % 4 else 9.0}, f"p{i}") for i in range(40)]
    low, high = hit_interval(many, "r")
    assert low < 0.75 < high and high - low < 0.35


def trial(lr: float, val: list[float], steps_per_epoch: int = 10, diverged: bool = False):
    t = TrialResult(f"lr={lr}", "fixed", lr, 0, val_loss=val, train_loss=val,
                    steps=steps_per_epoch * len(val), diverged=diverged)  # fmt: skip
    t.final_val_loss = None if diverged else val[-1]
    return t


def test_the_equal_cost_grid_and_the_raced_grid_read_the_dense_grid():
    grid = [trial(1e-3, [5, 4, 3, 2]), trial(1e-2, [4, 2, 1, 0.5]), trial(1e-1, [3, 1, 0.8, 0.9]),
            trial(1.0, [9], diverged=True)]  # fmt: skip
    # The search cost 2.4 full trials: a coarse grid of 2 LRs, the ends.
    answer = equal_cost_grid(grid, 96, "min")
    assert answer.lr == 1e-3 and answer.steps == 40 + 10
    race = raced_grid(grid, {"first_epochs": 2, "eta": 3, "rungs": 1, "smoothing": "last"}, 4,
                      "min")  # fmt: skip
    # First 2 epochs: 1e-1 leads (1 < 2 < 4); its full trial is the answer.
    assert race.lr == 1e-1 and race.trial is grid[2]
    assert race.steps == 3 * 20 + 10 + 40  # 2 epochs of each (the diverged one stopped) + full


@pytest.mark.parametrize("quick", [False, True])
def test_every_problem_of_the_bundled_study_is_valid(quick, tmp_path):
    from lr_lab.config.files import resolve_config
    from lr_lab.study.config import check_problems, load_study, parse_study, problems

    study = problems(parse_study(load_study(resolve_config("study"), quick), "study"))
    assert len(study) == (QUICK_PROBLEMS if quick else FULL_PROBLEMS)
    assert len({p.name for p in study}) == len(study)
    check_problems(study, tmp_path)  # raises, naming the problem, if any key is bad


def test_a_missing_package_is_one_line_for_the_whole_study(monkeypatch, tmp_path, capsys):
    # A fresh install without the peers or the examples' scikit-learn: one line per package,
    # naming the extra, before anything is written (it was one line per problem and peer, and a
    # traceback from the first problem that imported scikit-learn).
    import importlib.util

    real = importlib.util.find_spec
    gone = {"sklearn", "prodigyopt", "dadaptation", "schedulefree", "parameterfree", "optuna"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone
                        else real(name, *a))  # fmt: skip
    assert main(["--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6 and not (tmp_path / "out").exists(), err
    assert any("moons-mlp-momentum: lr_lab.examples.tabular needs sklearn: pip install -e "
               "'.[examples]'" in line for line in err), err  # fmt: skip
    assert any('prodigy needs the prodigyopt package: pip install -e ".[peers]" (5 problems'
               in line for line in err), err  # fmt: skip


@pytest.mark.slow
def test_the_quick_study_from_the_bundled_config(tmp_path):
    code, printed = run_study(["--quick", "--out", str(tmp_path)])
    assert code == 0 and "| `lightning` |" in printed
    (root,) = tmp_path.iterdir()
    ranking = {s["method"]: s for s in json.loads((root / "study.json").read_text())["ranking"]}
    # The search beside every kind of peer, each with its hit rate and its cost in steps.
    for method in ("search", "prodigy", "dadapt_adam", "schedulefree_adamw", "cocob", "optuna"):
        assert ranking[method]["n"] == 10 and 0 <= ranking[method]["hit_rate"] <= 1
        assert ranking[method]["steps"] > 0 and "cost" in ranking[method]


def test_a_resumed_study_keeps_the_config_it_started_with(tiny_study, tmp_path):
    # Its source file may change (a git pull); the study folder holds the study itself.
    root, study = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    saved = (copy / "study.yaml").read_text()
    assert "linear" in saved and "grid" in saved
    shutil.rmtree(copy / "runs" / "sine-sgd")
    (tmp_path / "gone.yaml").write_text("nonsense")  # the source is not read again
    code, _ = run_study(["--resume", str(copy)])
    assert code == 0
    assert json.loads((copy / "study.json").read_text())["grid"] == study["grid"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            "seeds: [0]\ngrid: {from: 1.0e-3, to: 1.0, points: 4}\naxes: {f: [1, 2]}\n",
            "axes = {'f': [1, 2]}: expected a mapping of names to mappings of names to mappings",
        ),
        ("seeds: [0]\ngrid: {from: 1.0e-3, to: 1.0, points: 4}\nworkers: -1\n", "workers = -1"),
        ("seeds: [0]\ngrid: {from: 1, to: 0.1, points: 4}\n", "needs 0 < from < to"),
        ("seeds: [a]\ngrid: {from: 1.0e-3, to: 1.0, points: 4}\n", "seeds = ['a']"),
        ("seeds: [0]\ngrid: {from: 1.0e-3, to: 1.0, points: 4}\nbase: [1]\n", "base = [1]"),
    ],
)
def test_a_malformed_study_config_is_one_line(tmp_path, capsys, content, fragment):
    (tmp_path / "s.yaml").write_text(content)
    assert main(["--config", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0]


def test_a_study_in_use_is_one_line(tiny_study, capsys):
    from lr_lab.experiment.folder import RunLock

    root, _ = tiny_study
    with RunLock(root):
        assert main(["--resume", str(root)]) == 2
    assert "in use by pid" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["positional"], "unexpected argument 'positional'"), (["--workers", "x"], "invalid int value"),
     (["--workers", "0"], "--workers 0"), (["--resume", "/nonexistent"], "not a study folder")],
)  # fmt: skip
def test_bad_study_options_are_one_line(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def study_command(tmp_path: Path, out: Path, workers: int) -> list[str]:
    (tmp_path / "tiny.yaml").write_text(TINY_STUDY)
    return [sys.executable, "-m", "lr_lab.cli", "study", "--config", str(tmp_path / "tiny.yaml"),
            "--out", str(out), "--workers", str(workers)]  # fmt: skip


def wait_for_runs(out: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(list(out.glob("*/runs/*/results.json"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            _, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid:
                found.append(int(entry.name))
    return alive(found)


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie no reaper collected is dead)."""
    live = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                live.append(pid)
    return live


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


def statuses(root: Path) -> dict[str, str]:
    return {run.parent.name: json.loads(run.read_text())["status"]
            for run in root.glob("runs/*/results.json")}  # fmt: skip


def test_ctrl_c_stops_a_study_and_its_hint_resumes_it(tmp_path):
    out = tmp_path / "my studies"  # the hint must survive a space
    cmd = study_command(tmp_path, out, workers=2)
    proc = track(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    wait_for_runs(out, 1)  # the first two problems started (one may not have its folder yet)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(workers) == 2 and not wait_gone(workers, 5)
    # The running problems stopped at a step (interrupted, resumable; one may have finished just
    # before); the queued ones (sine-*) never started.
    (root,) = out.iterdir()
    started = statuses(root)
    assert started and set(started) <= {"linear-sgd", "linear-adam"}
    assert "interrupted" in started.values() and set(started.values()) <= {
        "interrupted",
        "complete",
    }
    assert {p.name for p in (root / "runs").iterdir()} == set(started)
    (session,) = json.loads((root / "sessions.json").read_text())
    assert session["status"] == "interrupted" and session["wall_s"] > 0
    hint = err.strip().splitlines()[-1]
    assert "interrupted" in hint and "Traceback" not in err
    resume = shlex.split(hint.split("Finish with: ", 1)[1])
    assert resume[:3] == ["lr-lab", "study", "--resume"] and Path(resume[3]).parent == out
    assert run_study(resume[2:])[0] == 0  # the hint, as typed, finishes the study
    study = json.loads((Path(resume[3]) / "study.json").read_text())
    assert [s["status"] for s in study["sessions"]] == ["interrupted", "complete"]
    assert study["sessions"][0] == session  # both sessions' time, the first one's date
    assert study["wall_s"] == pytest.approx(sum(s["wall_s"] for s in study["sessions"]), abs=0.06)
    assert study["date"] == session["started"][:10]


@pytest.mark.slow  # a whole process's life: in CI's slow suite, not the default
def test_a_killed_study_takes_its_workers_and_its_lock_with_it(tmp_path):
    out = tmp_path / "out"
    cmd = study_command(tmp_path, out, workers=2)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    workers = []
    try:
        wait_for_runs(out, 2)  # both workers training
        workers = children(proc.pid)
        assert len(workers) == 2
        (root,) = out.iterdir()

        def holds_root(pid: int) -> bool:
            fds = Path(f"/proc/{pid}/fd").iterdir()
            return any(os.path.realpath(fd) == str(root.resolve()) for fd in fds)

        assert [pid for pid in [proc.pid, *workers] if holds_root(pid)] == [proc.pid]
        proc.kill()
        proc.wait()
        assert not wait_gone(workers, 10)  # they die with it, stopping at a step
    finally:
        proc.kill()
        for pid in alive(workers):  # without the fix: orphans, ended here
            os.kill(pid, signal.SIGKILL)
    assert "running" not in statuses(root).values()
    assert run_study(["--resume", str(root)])[0] == 0  # the lock died with them


def test_resuming_a_complete_study_rewrites_nothing(tiny_study, tmp_path):
    root, _ = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.iterdir() if p.is_file()}
    code, printed = run_study(["--resume", str(copy)])
    assert code == 0 and "| `lightning` |" in printed and "nothing to do" in printed
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in copy.iterdir() if p.is_file()}
    assert after == before


def test_a_resumed_study_adds_its_time_to_the_first_one(tiny_study, tmp_path):
    root, study = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "runs" / "sine-adam")
    assert run_study(["--resume", str(copy)])[0] == 0
    again = json.loads((copy / "study.json").read_text())
    first, second = again["sessions"]
    assert first == study["sessions"][0] and again["date"] == study["date"]
    assert second["status"] == "complete" and second["wall_s"] > 0
    assert again["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"], abs=0.06)
    assert json.loads((copy / "sessions.json").read_text()) == again["sessions"]
    assert "over 2 sessions" in (copy / "study.md").read_text()


@pytest.mark.parametrize("extra", [["--quick"], ["--config", "study"], ["--out", "elsewhere"]])
def test_a_resumed_study_refuses_other_options(tiny_study, extra, capsys):
    root, _ = tiny_study
    assert main(["--resume", str(root), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"takes no other options (got {' '.join(extra)})" in err[0]


@pytest.mark.parametrize("content", ["[{}]", "{not json", None])
def test_a_damaged_sessions_file_is_recovered_from_study_json(tiny_study, tmp_path, content):
    root, study = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    path = copy / "sessions.json"
    path.unlink() if content is None else path.write_text(content)
    code, printed = run_study(["--resume", str(copy)])
    assert code == 0, printed
    assert "recovered 1 sessions from study.json" in printed and "Traceback" not in printed
    assert json.loads(path.read_text()) == study["sessions"]  # repaired on disk
    assert json.loads((copy / "study.json").read_text()) == study  # nothing else rewritten


def test_a_damaged_study_json_is_rebuilt_from_the_runs(tiny_study, tmp_path):
    root, study = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    (copy / "study.json").write_text('{"truncated')
    code, printed = run_study(["--resume", str(copy)])
    assert code == 0, printed
    assert "study.json is damaged: rebuilt from runs/" in printed
    again = json.loads((copy / "study.json").read_text())
    assert again["records"] == study["records"]  # the same numbers, from the same runs
    assert again["ranking"] == study["ranking"]
    assert again["sessions"][0] == study["sessions"][0]  # sessions.json kept the first one's time
    assert again["sessions"][1]["status"] == "complete"


def test_sessions_lost_with_study_json_say_so(tiny_study, tmp_path):
    root, _ = tiny_study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    (copy / "study.json").write_text("[]")
    (copy / "sessions.json").write_text("[{}]")
    code, printed = run_study(["--resume", str(copy)])
    assert code == 0, printed
    assert "sessions.json is damaged, and study.json counts none" in printed
    assert "study.json is damaged: rebuilt from runs/" in printed
    assert [s["status"] for s in json.loads((copy / "study.json").read_text())["sessions"]] == [
        "complete"
    ]


def test_a_problem_whose_error_cannot_travel_is_one_failed_line(tmp_path):
    # A worker's exception that pickles there but not here (a user's class with its own
    # __init__) was a traceback from the study's pool; it is that problem's FAILED line.
    config = tmp_path / "broken.yaml"
    config.write_text(
        "seeds: [0]\ngrid: {from: 1.0e-2, to: 1.0e-1, points: 2}\n"
        "base: {trials.max_epochs: 2, finder.enabled: false}\n"
        "axes: {function: {linear: {data.function: linear, data.n_samples: 64}}}\n"
        "extra:\n  users:\n    odd:\n"
        "      model.class_path: tests.user_modules.RaisesOddError\n"
        "      data.class_path: tests.user_modules.TinyData\n"
    )
    out = io.StringIO()
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(config), "--out", str(tmp_path / "out"), "--workers", "2"])
    assert code == 1, err.getvalue()
    assert "odd: FAILED: seed0/" in out.getvalue() and "TwoArgumentError: a user's own error" in (
        out.getvalue()
    )
    assert "Traceback" not in err.getvalue() and "1 problems failed (odd)" in err.getvalue()
