"""The finder's pictures: ``lr_finder.png`` and ``lr_sweep.png``.

``lr_finder.png``: its curves, the rules, the fixed LRs as bands. ``lr_sweep.png``: what the
finder saw over what training at each LR achieved.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lr_lab.analysis.comparison import Row
from lr_lab.analysis.records import FinderResult, TrialResult
from lr_lab.analysis.results import RunResults
from lr_lab.report.plots import (
    RULE_COLORS,
    RULE_STYLES,
    VERDICT_COLORS,
    Axis,
    distinct_rows,
    lr_free,
    save_png,
)
from lr_lab.report.table import fmt, loss_text


def _finder_ylim(ax: Any, curves: list[list[float]]) -> None:
    """A y-range that a curve shooting up at the end (it leaves through the top) cannot squash."""
    finite = [v for c in curves for v in c if math.isfinite(v)]
    if finite:
        low, typical = min(finite), statistics.median(finite)
        ax.set_ylim(low - 0.1 * (typical - low), min(max(finite), 2 * typical) * 1.05)


def _points(finder: FinderResult, values: list[float]) -> tuple[list[float], list[float]]:
    pts = [(lr, v) for lr, v in zip(finder.lr, values) if math.isfinite(v)]
    return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])


def _draw_finders(ax: Any, results: RunResults, all_curves: bool) -> None:
    """The finder's curves.

    For the first seed Lightning's, the corrected one and the raw loss (``all_curves``); for the
    others (or all, without ``all_curves``) the curve the rules read.
    """
    curves = []
    for i, finder in enumerate(results.finders):
        seed = f" (seed {finder.seed})" if len(results.finders) > 1 else ""
        if i == 0 and all_curves:
            ax.plot(*_points(finder, finder.raw_loss), ".", color="0.75", ms=3,
                    label=f"raw loss per step{seed}")  # fmt: skip
            ax.plot(*_points(finder, finder.loss), "-", color="black", lw=1.6,
                    label=f"Lightning's smoothed loss{seed}")  # fmt: skip
            ax.plot(*_points(finder, finder.corrected_loss), "--", color="tab:cyan", lw=1.6,
                    label=f"bias-corrected smoothed loss{seed}")  # fmt: skip
            curves += [finder.loss, finder.corrected_loss]
        else:
            shade = str(0.35 + 0.4 * i / max(1, len(results.finders) - 1))
            ax.plot(*_points(finder, finder.rule_curve()), "-", color=shade, lw=1,
                    label=f"{finder.curve} curve{seed}")  # fmt: skip
            curves.append(finder.rule_curve())
    ax.set_xscale("log")
    _finder_ylim(ax, curves)


def _mark_rules(ax: Any, results: RunResults, labels: bool = True) -> None:
    # With several seeds a rule's line is the median of its suggestions, the band their range.
    seeds = f" (median of {len(results.finders)} seeds)" if len(results.finders) > 1 else ""
    for name, rule in results.comparison.rules.items():
        if rule.lr is None:
            continue
        base, corrected = name.split("@")[0], "@" in name
        color = RULE_COLORS.get(base, "0.4")
        ax.axvline(rule.lr, color=color, ls=RULE_STYLES.get(base, "--"), lw=1.0 if corrected else 1.5,
                   alpha=0.55 if corrected else 1.0,
                   label=f"rule {name}: {fmt(rule.lr, 3)}{seeds}" if labels else None)  # fmt: skip
        if rule.lr_min is not None and rule.lr_min != rule.lr_max:
            ax.axvspan(rule.lr_min, rule.lr_max, color=color, alpha=0.08)


def plot_lr_finder(results: RunResults, path: Path) -> Path:
    """The finder's curves, each rule's suggestion, and the trial LRs marked with their results."""
    fig = Figure(figsize=(10.5, 5.8))
    ax = fig.subplots()
    _draw_finders(ax, results, all_curves=True)
    _mark_rules(ax, results)
    for row in distinct_rows(results):
        if row.source != "grid":
            continue
        color = VERDICT_COLORS.get(row.verdict, "0.2")
        ax.axvline(row.lr, color=color, lw=4, alpha=0.25)
        text = f" {loss_text(row, 1)}" + ("" if row.diverged_seeds else f"  {row.verdict}")
        ax.annotate(text, xy=(row.lr, 0.02), xycoords=("data", "axes fraction"), fontsize=7,
                    color=color, rotation=90, ha="right", va="bottom")  # fmt: skip
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("finder loss (training loss)")
    reads = results.finders[0].curve if results.finders else "lightning"
    bands = (f" Bands: the fixed-LR trials, with their final {results.comparison.metric}."
             if any(t.role == "fixed" for t in results.trials) else "")  # fmt: skip
    ax.set_title(
        f"LR finder (Lightning {results.lightning_version}): the rules read the {reads} curve. "
        "Lightning's smoothing starts near half\nthe first loss (#14167); the corrected curve "
        f"does not.{bands}",
        fontsize=9,
    )
    ax.legend(fontsize=7.5, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return save_png(fig, path)


def _grid_segments(rows: list[Row]) -> list[list[Row]]:
    """Runs of neighbouring grid LRs that all have a mean (a diverged LR breaks the line)."""
    segments: list[list[Row]] = [[]]
    for row in rows:
        if row.mean is None:
            segments.append([])
        else:
            segments[-1].append(row)
    return [s for s in segments if s]


def plot_lr_sweep(results: RunResults, path: Path) -> Path:
    """What training achieved at each LR (bottom, log-log) under the finder's curve (top)."""
    fig = Figure(figsize=(10, 8))
    top, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    _draw_finders(top, results, all_curves=False)
    _mark_rules(top, results, labels=False)
    top.set_ylabel("finder loss")
    top.set_title("What the finder saw (top) and what training at each LR achieved (bottom)",
                  fontsize=10)  # fmt: skip
    top.legend(fontsize=7, loc="upper left")
    top.grid(True, which="both", alpha=0.3)
    comp = results.comparison
    by_key = {t.key: t for t in results.trials}
    finals = [t.final_loss for t in results.trials if t.final_loss is not None and not t.diverged]
    axis = Axis.of(finals, comp.mode == "max")
    ceiling = axis.top
    grid_rows = sorted((r for r in comp.rows if r.source == "grid"), key=lambda r: r.lr)
    for segment in _grid_segments(grid_rows):
        xs = [r.lr for r in segment]
        ax.plot(xs, axis.values([r.mean for r in segment]), "-", color="0.45", lw=1.2, zorder=2)
        if len(results.seeds) > 1:
            ax.fill_between(xs, axis.values([r.spread[0] for r in segment]),
                            axis.values([r.spread[1] for r in segment]), color="0.5", alpha=0.15)  # fmt: skip
    for row in distinct_rows(results):
        if lr_free(row):  # an LR-free optimizer has no LR to plot at (the table ranks it)
            continue
        color = VERDICT_COLORS.get(row.verdict, "0.3")
        for name in row.trial_names:
            t: TrialResult = by_key[name]
            marker = "x" if t.diverged else ("o" if t.role == "fixed" else "D")
            y = ceiling if t.diverged else axis.values([t.final_loss, *finals])[0]
            ax.scatter(t.lr, y, marker=marker, color="tab:red" if t.diverged else color, s=45,
                       zorder=3)  # fmt: skip
    _mark_rules(ax, results)
    handles, labels = ax.get_legend_handles_labels()
    extra = [(Line2D([], [], color="0.45"), f"grid: mean final {comp.metric} over seeds"
              + (" (band: min..max)" if len(results.seeds) > 1 else ""))]  # fmt: skip
    extra = extra if any(r.source == "grid" for r in comp.rows) else []
    for verdict, color in VERDICT_COLORS.items():
        if verdict != "diverged" and any(
            r.verdict == verdict for r in comp.rows if r.trial_names and not lr_free(r)
        ):
            extra.append((Line2D([], [], color=color, marker="o", ls=""), verdict))
    extra.append(
        (Line2D([], [], color="0.3", marker="D", ls=""), "a rule's, the search's or Optuna's trial")
    )
    if any(t.diverged for t in results.trials):
        marker = Line2D([], [], color="tab:red", marker="x", ls="")
        extra.append((marker, "diverged (drawn at the top)"))
    ax.legend(handles + [h for h, _ in extra], labels + [t for _, t in extra], fontsize=7.5,
              loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4,
              title="points: one per trial and seed, coloured by the verdict of its LR's mean "
                    "over seeds", title_fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    axis.apply(ax, f"final {comp.metric}")
    ax.set_xlabel("learning rate (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    return save_png(fig, path)
