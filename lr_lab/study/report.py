"""The study's report: ``study.json`` (every number, traceable), ``study.md``, ``study.png``.

``sessions.json`` holds each session of the study (its start, wall time, workers, status), so
that a resumed study reports the time of all of them, not only of the last.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from lr_lab.atomic import atomic_write
from lr_lab.report.plots import save_png
from lr_lab.study.stats import HIT, TAUS, MethodSummary, ProblemSeed, by_family, ranking

SESSIONS = "sessions.json"
FILES = ("study.json", "study.md", "study.png")  # what write_study writes


def _valid(sessions: Any) -> bool:
    keys = {"started": str, "wall_s": (int, float), "workers": int, "status": str}
    return isinstance(sessions, list) and all(
        isinstance(s, dict) and all(isinstance(s.get(k), t) for k, t in keys.items())
        for s in sessions
    )


def _load(path: Path, key: str | None = None) -> Any:
    try:
        data = json.loads(path.read_text())
        return data.get(key) if key else data
    except (OSError, ValueError, AttributeError):
        return None


def read_sessions(root: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The sessions recorded in a study folder so far (none in a new one), and what was repaired.

    A damaged or missing ``sessions.json`` is recovered from ``study.json`` (which counts the
    sessions up to its writing); if that fails too, the earlier sessions' time is lost, and the
    note says so.
    """
    path = root / SESSIONS
    sessions = _load(path) if path.is_file() else None
    if _valid(sessions):
        return sessions, None
    if not path.is_file() and not (root / "study.json").is_file():
        return [], None  # a new study
    what = f"{path} is {'damaged' if path.is_file() else 'missing'}"
    counted = _load(root / "study.json", "sessions")
    if _valid(counted) and counted:
        return counted, f"{what}: recovered {len(counted)} sessions from study.json"
    return [], f"{what}, and study.json counts none: the earlier sessions' time is lost"


class Session:
    """This session's entry in ``sessions.json``: the start, the wall time so far, the status.

    Saved after each problem that trained and at the end, so a killed session keeps its time up
    to its last finished problem (and the status ``running``). A session that trained nothing
    and found the study's files up to date saves nothing: resuming a complete study changes
    nothing.
    """

    def __init__(self, root: Path, workers: int):
        self.root, self.workers = root, workers
        # The earlier ones, then this one once saved; `repaired` says what was damaged.
        self.sessions, self.repaired = read_sessions(root)
        if self.repaired:  # the repair is written at once: nothing else may need rewriting
            atomic_write(root / SESSIONS, json.dumps(self.sessions, indent=1) + "\n")
        self.earlier = len(self.sessions)
        self.started, self.start = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()

    def save(self, status: str) -> list[dict[str, Any]]:
        """Record this session as it stands; return every session."""
        entry = {"started": self.started, "wall_s": round(time.perf_counter() - self.start, 1),
                 "workers": self.workers, "status": status}  # fmt: skip
        self.sessions = [*self.sessions[: self.earlier], entry]
        atomic_write(self.root / SESSIONS, json.dumps(self.sessions, indent=1) + "\n")
        return self.sessions


def up_to_date(root: Path, sessions: list[dict[str, Any]]) -> bool:
    """Whether the study's files all stand and ``study.json`` already counts every session."""
    counted = _load(root / "study.json", "sessions")  # None: damaged, or from before sessions
    return counted == sessions and all((root / name).is_file() for name in FILES)


def damaged_report(root: Path) -> str | None:
    """What is wrong with an existing ``study.json`` (rebuilt from ``runs/``), or ``None``."""
    path = root / "study.json"
    if path.is_file() and not isinstance(_load(path), dict):
        return f"{path} is damaged: rebuilt from runs/"
    return None


def _timing(sessions: list[dict[str, Any]]) -> str:
    each = [f"{s['wall_s'] / 60:.1f} min on {s['workers']} workers" for s in sessions]
    if len(sessions) == 1:
        return each[0]
    total = sum(s["wall_s"] for s in sessions)
    return f"{total / 60:.1f} min over {len(sessions)} sessions ({', '.join(each)})"


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3g}x"


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _name(s: MethodSummary) -> str:
    return f"`{s.method}`" + {"peer": " (peer)", "grid": " (grid)"}.get(s.kind, "")


def ranking_table(summaries: list[MethodSummary]) -> list[str]:
    """The main table, one row per method, best first."""
    lines = [
        f"| method | hit rate (within {HIT}x of the oracle) [95% interval] | median regret | "
        "90th pct regret | diverged | no answer | cost to choose (of a 13-LR grid) | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        low, high = s.hit_ci
        lines.append(
            f"| {_name(s)} | **{_pct(s.hit_rate)}** [{_pct(low)}, {_pct(high)}] | "
            f"{_x(s.median_regret)} | {_x(s.p90_regret)} | {_pct(s.diverged_rate)} | "
            f"{_pct(s.no_answer_rate)} | {_pct(s.cost)} | {s.n} ({s.n_problems} problems) |"
        )
    return lines


def shown_methods(summaries: list[MethodSummary], rules: int = 2) -> list[str]:
    """The methods the per-family table and the figure show: all but the weaker rules."""
    kept = [s.method for s in summaries if s.kind != "rule"]
    best_rules = [s.method for s in summaries if s.kind == "rule"][:rules]
    return best_rules + kept + (["lightning"] if any(s.method == "lightning" for s in summaries)
                                and "lightning" not in best_rules else [])  # fmt: skip


def family_table(records: list[ProblemSeed], methods: list[str], peers: set[str]) -> list[str]:
    """Hit rate per problem family (rows) and method (columns), with each family's n."""
    lines = ["| family | n | " + " | ".join(f"`{m}`" for m in methods) + " |"]
    lines += ["|---|---" + "|---" * len(methods) + "|"]
    for family, summaries in by_family(records, peers).items():
        cells = {s.method: _pct(s.hit_rate) for s in summaries}
        n = max((s.n for s in summaries), default=0)
        lines.append(f"| {family} | {n} | " + " | ".join(cells.get(m, "-") for m in methods) + " |")
    return lines


def markdown(records: list[ProblemSeed], meta: dict[str, Any]) -> str:
    """``study.md``: what was run, the ranking with intervals and costs, the ranking per family."""
    peers = set(meta.get("peers", []))
    summaries = ranking(records, peers)
    lines = [
        "# Which way of choosing the learning rate should you trust?",
        "",
        f"{meta['problems']} problems x {len(meta['seeds'])} seeds = {len(records)} "
        f"problem-seeds; {'started ' if len(meta['sessions']) > 1 else ''}{meta['date']}; lr_lab "
        f"{meta['lr_lab']}, Lightning {meta['lightning']}, torch {meta['torch']}; "
        f"{_timing(meta['sessions'])}.",
        "",
        "Regret: the final value of the answer's full-budget trial over the oracle's, the best "
        f"of a dense grid ({len(meta['grid'])} LRs, {meta['grid'][0]:g}..{meta['grid'][-1]:g}), "
        "same initial weights and data order (for an accuracy: the ratio of errors); a diverged "
        "answer has infinite regret, no answer is a miss. Cost to choose: the median training steps "
        "a method spent besides its answer's own full training (the finder, a race, other trials), "
        "over a 13-LR grid's (13 full trials). `@corrected`: the "
        "rule read off the bias-corrected finder curve. The interval: a bootstrap over problems.",
        "",
        *ranking_table(summaries),
        "",
        "## Hit rate by family",
        "",
        *family_table(records, shown_methods(summaries), peers),
    ]
    return "\n".join(lines) + "\n"


def plot(records: list[ProblemSeed], path: Path, peers: set[str]) -> Path:
    """``study.png``: the performance profiles, and each method's hit rate against its cost."""
    summaries = ranking(records, peers)
    shown = shown_methods(summaries)
    fig = Figure(figsize=(13, 5.5))
    left, right = fig.subplots(1, 2)
    styles = {"search": ("tab:red", "-", 2.5), "grid": ("0.35", "--", 1.5),
              "peer": (None, ":", 1.8), "rule": (None, "-", 1.2)}  # fmt: skip
    for s in (s for s in summaries if s.method in shown):
        color, ls, lw = styles[s.kind]
        if s.method == "grid_equal_cost":  # the two grids apart
            color, ls = "0.6", "-."
        left.plot([1.0, *TAUS], [0.0, *s.profile], ls=ls, lw=lw, color=color, marker=".",
                  label=f"{s.method} ({_pct(s.hit_rate)})")  # fmt: skip
        low, high = s.hit_ci
        right.errorbar([s.cost], [s.hit_rate], yerr=[[s.hit_rate - low], [high - s.hit_rate]],
                       fmt="o", color=color or "tab:blue", capsize=3)  # fmt: skip
        right.annotate(s.method, (s.cost, s.hit_rate), xytext=(5, 3),
                       textcoords="offset points", fontsize=8)  # fmt: skip
    left.axvline(HIT, color="tab:green", ls="--", lw=1)
    left.set_xscale("log")
    left.set_xlabel("regret threshold (final value / oracle's; log)")
    left.set_ylabel("share of problem-seeds within it")
    left.set_title(f"Performance profiles over {len(records)} problem-seeds")
    left.legend(fontsize=7, loc="lower right")
    left.grid(True, which="both", alpha=0.3)
    right.axhline(0.9, color="tab:green", ls="--", lw=1, label="90% of problems")
    right.axvline(0.1, color="0.5", ls=":", lw=1, label="a tenth of a 13-LR grid")
    right.set_xscale("symlog", linthresh=0.01)  # LR-free optimizers choose for free: 0
    right.set_xlabel(
        "cost to choose: training steps besides the answer's, of a 13-LR grid (median)"
    )
    right.set_ylabel(f"hit rate (within {HIT}x), 95% interval")
    right.set_title("Right how often, at what cost")
    right.legend(fontsize=8, loc="lower right")
    right.grid(True, which="both", alpha=0.3)
    return save_png(fig, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def write_study(root: Path, records: list[ProblemSeed], meta: dict[str, Any]) -> list[Path]:
    """Write the three files into the study folder (atomically); return them."""
    peers = set(meta.get("peers", []))
    data = {
        **meta,
        "hit": HIT,
        "taus": list(TAUS),
        "ranking": [asdict(s) for s in ranking(records, peers)],
        "families": {f: [asdict(s) for s in ss] for f, ss in by_family(records, peers).items()},
        "records": [asdict(r) for r in records],  # every race, every answer's trial
    }
    json_path = atomic_write(root / "study.json", json.dumps(_jsonable(data), indent=1) + "\n")
    md_path = atomic_write(root / "study.md", markdown(records, meta))
    return [json_path, md_path, plot(records, root / "study.png", peers)]
