"""The study's report: ``study.json`` (every number, traceable), ``study.md``, ``study.png``.

``sessions.json`` holds each session of the study (its start, wall time, workers, status), so
that a resumed study reports the time of all of them, not only of the last.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from lr_lab.atomic import atomic_write
from lr_lab.errors import RunDirError
from lr_lab.report.plots import save_png
from lr_lab.study.stats import HIT, ProblemSeed, RuleSummary, by_family, ranking

SESSIONS = "sessions.json"
FILES = ("study.json", "study.md", "study.png")  # what write_study writes


def read_sessions(root: Path) -> list[dict[str, Any]]:
    """The sessions recorded in a study folder so far (none in a new one)."""
    path = root / SESSIONS
    if not path.is_file():
        return []
    try:
        sessions = json.loads(path.read_text())
    except ValueError:
        sessions = None
    if not (isinstance(sessions, list) and all(isinstance(s, dict) for s in sessions)):
        raise RunDirError(f"{path}: damaged; delete it to resume (the time it recorded is lost)")
    return sessions


class Session:
    """This session's entry in ``sessions.json``: the start, the wall time so far, the status.

    Saved after each problem that trained and at the end, so a killed session keeps its time up
    to its last finished problem (and the status ``running``). A session that trained nothing
    and found the study's files up to date saves nothing: resuming a complete study changes
    nothing.
    """

    def __init__(self, root: Path, workers: int):
        self.root, self.workers = root, workers
        self.sessions = read_sessions(root)  # the earlier ones, then this one once saved
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
    try:  # one from before sessions were kept counts none
        counted = json.loads((root / "study.json").read_text()).get("sessions", [])
    except (OSError, ValueError, AttributeError):
        return False
    return counted == sessions and all((root / name).is_file() for name in FILES)


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


def rule_table(summaries: list[RuleSummary]) -> list[str]:
    """The main table, one row per rule, best first."""
    lines = [
        f"| rule | hit rate (within {HIT}x of the best grid LR's loss) | median regret | "
        "90th pct regret | diverged | no suggestion | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| `{s.rule}` | {_pct(s.hit_rate)} | {_x(s.median_regret)} | {_x(s.p90_regret)} | "
            f"{_pct(s.diverged_rate)} | {_pct(s.no_suggestion_rate)} | {s.n} |"
        )
    return lines


def _family_tables(records: list[ProblemSeed], rules: list[str]) -> list[str]:
    lines = []
    for axis, values in by_family(records).items():
        lines += ["", f"### By {axis}: hit rate / median regret", ""]
        lines += ["| " + axis + " | " + " | ".join(f"`{r}`" for r in rules) + " |"]
        lines += ["|---" * (len(rules) + 1) + "|"]
        for value, summaries in values.items():
            cells = {s.rule: f"{_pct(s.hit_rate)} / {_x(s.median_regret)}" for s in summaries}
            lines.append(f"| {value} | " + " | ".join(cells.get(r, "-") for r in rules) + " |")
    return lines


def markdown(records: list[ProblemSeed], meta: dict[str, Any]) -> str:
    """``study.md``: what was run, the ranking, the cost, and the ranking per problem family."""
    summaries = ranking(records)
    grid = statistics.fmean(r.grid_steps for r in records)
    finder = statistics.fmean(r.finder_steps for r in records)
    lines = [
        "# Which finder rule should you trust?",
        "",
        f"{meta['problems']} problems x {len(meta['seeds'])} seeds = {len(records)} "
        f"problem-seeds; {'started ' if len(meta['sessions']) > 1 else ''}{meta['date']}; lr_lab "
        f"{meta['lr_lab']}, Lightning {meta['lightning']}, torch {meta['torch']}; "
        f"{_timing(meta['sessions'])}.",
        "",
        "Regret: the final loss trained at the rule's LR over the best final loss of the dense "
        f"grid ({len(meta['grid'])} LRs, {meta['grid'][0]:g}..{meta['grid'][-1]:g}), same "
        "initial weights and data order; a diverged suggestion counts as infinite regret. "
        "`@corrected`: the rule read off the bias-corrected finder curve.",
        "",
        *rule_table(summaries),
        "",
        f"Cost per problem-seed: the finder trained {finder:.0f} steps, the grid "
        f"{grid:.0f} ({grid / finder:.0f}x as many).",
        *_family_tables(records, [s.rule for s in summaries]),
    ]
    return "\n".join(lines) + "\n"


def plot(records: list[ProblemSeed], path: Path) -> Path:
    """``study.png``: each rule's regrets (log scale), a diverged one drawn at the top."""
    summaries = ranking(records)
    finite = [o.regret for r in records for o in r.rules.values()
              if o.regret is not None and math.isfinite(o.regret)]  # fmt: skip
    top = max([*finite, 10.0]) * 3
    fig = Figure(figsize=(max(8, 0.9 * len(summaries) + 2), 5.5))
    ax = fig.subplots()
    for i, s in enumerate(summaries):
        regrets = [r.rules[s.rule].regret for r in records if s.rule in r.rules]
        values = [v for v in regrets if v is not None]
        shown = [min(max(v, 1e-2), top) for v in values]
        jitter = [i + 0.25 * math.sin(7.1 * k) for k in range(len(shown))]
        colors = ["tab:red" if math.isinf(v) else "tab:blue" for v in values]
        ax.scatter(jitter, shown, s=9, c=colors, alpha=0.5, lw=0)
        if finite_here := [v for v in values if math.isfinite(v)]:
            ax.boxplot([finite_here], positions=[i], widths=0.55, showfliers=False)
        ax.annotate(f"hit {_pct(s.hit_rate)}\nnone {_pct(s.no_suggestion_rate)}", (i, top),
                    ha="center", va="bottom", fontsize=7)  # fmt: skip
    ax.axhline(HIT, color="tab:green", ls="--", lw=1, label=f"hit: within {HIT}x")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylim(top=top * 2.5)
    ax.set_xticks(range(len(summaries)), [s.rule for s in summaries], rotation=30, ha="right")
    ax.set_ylabel("regret: final loss / best grid loss (log; red = diverged, at the top)")
    ax.set_title(f"Where each rule's LR landed, over {len(records)} problem-seeds (best first)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", which="both", alpha=0.3)
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
    summaries = ranking(records)
    data = {
        **meta,
        "hit": HIT,
        "ranking": [asdict(s) for s in summaries],
        "families": {
            axis: {value: [asdict(s) for s in ss] for value, ss in values.items()}
            for axis, values in by_family(records).items()
        },  # fmt: skip
        "records": [asdict(r) for r in records],
    }
    json_path = atomic_write(root / "study.json", json.dumps(_jsonable(data), indent=1) + "\n")
    md_path = atomic_write(root / "study.md", markdown(records, meta))
    return [json_path, md_path, plot(records, root / "study.png")]
