"""The report's pictures: ``loss_curves.png``, ``lr_finder.png``, ``lr_sweep.png``.

Each reads the finished :class:`~lr_lab.results.RunResults` only and is written atomically.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lr_lab.comparison import Row  # noqa: E402
from lr_lab.results import RunResults, TrialResult  # noqa: E402
from lr_lab.rundir import atomic_save  # noqa: E402
from lr_lab.table import fmt, loss_text  # noqa: E402

VERDICT_COLORS = {
    "best": "tab:green",
    "good": "tab:blue",
    "slow": "tab:orange",
    "poor": "tab:brown",
    "unstable": "tab:purple",
    "diverged": "tab:red",
}


def _trials_by_name(results: RunResults) -> dict[str, TrialResult]:
    return {f"seed{t.seed}/{t.name}": t for t in results.trials}


def _distinct_rows(results: RunResults) -> list[Row]:
    """The rows that trained something, once per set of trials (rules may share one)."""
    seen, rows = set(), []
    for row in results.comparison.rows:
        key = tuple(row.trial_names)
        if key and key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _row_label(row: Row) -> str:
    if row.source == "grid":
        return f"lr={fmt(row.lr, 3)} ({row.verdict})"
    return f"{'+'.join(row.group)} lr={fmt(row.lr, 3)} ({row.verdict})"


def plot_loss_curves(results: RunResults, path: Path) -> Path:
    """Per-epoch training (and validation) loss of every trial, overlaid, log-scale loss.

    With several seeds each line is the mean over seeds and the band spans min..max.
    """
    by_name = _trials_by_name(results)
    panels = ["train_loss"] + (["val_loss"] if results.comparison.metric != "train_loss" else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels) + 3, 4.8), squeeze=False)
    rows = _distinct_rows(results)
    colors = plt.cm.viridis([i / max(1, len(rows) - 1) for i in range(len(rows))])
    for ax, key in zip(axes[0], panels):
        shown: list[float] = []
        stops: list[int] = []
        for row, color in zip(rows, colors):
            trials = [by_name[n] for n in row.trial_names if n in by_name]
            # The line is the mean of the seeds that did not diverge; each diverged seed is an x
            # at the last epoch it reached.
            curves = [getattr(t, key) for t in trials if not t.diverged]
            stops += [max(1, len(getattr(t, key))) for t in trials if t.diverged]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            epochs = list(range(1, length + 1))
            columns = [[c[i] for c in curves] for i in range(length)]
            mean = [sum(v) / len(v) for v in columns]
            shown += [v for col in columns for v in col]
            style = "-" if row.source == "grid" else "--"
            ax.plot(epochs, mean, style, color=color, marker="o", ms=3, label=_row_label(row))
            if len(curves) > 1:
                ax.fill_between(
                    epochs,
                    [min(v) for v in columns],
                    [max(v) for v in columns],
                    color=color,
                    alpha=0.2,
                )
        if shown:
            ax.set_ylim(min(shown) / 2, max(shown) * 5)
        top = ax.get_ylim()[1]
        for epoch in stops:
            ax.plot(epoch, top, "x", color="tab:red", ms=10, mew=2, clip_on=False)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{key.replace('_', ' ')} (MSE, log scale)")
        ax.set_title(f"{'Training' if key == 'train_loss' else 'Validation'} loss per epoch")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    seeds = results.seeds
    fig.suptitle(
        "Loss curves, every trial from the same initial weights"
        + (f" (mean and range over seeds {seeds})" if len(seeds) > 1 else "")
        + "\nx = a diverged trial, at the epoch where it stopped (drawn at the top)",
        fontsize=10,
    )
    return _save(fig, path)


def _mark_rules(ax: Any, results: RunResults) -> None:
    comp = results.comparison
    styles = ["--", "-.", ":", (0, (5, 1))]
    for i, (name, rule) in enumerate(comp.rules.items()):
        if rule.lr is None:
            continue
        ax.axvline(
            rule.lr,
            color=f"C{i + 3}",
            ls=styles[i % 4],
            lw=1.5,
            label=f"{name}: {fmt(rule.lr, 3)}",
        )
        if rule.lr_min is not None and rule.lr_min != rule.lr_max:
            ax.axvspan(rule.lr_min, rule.lr_max, color=f"C{i + 3}", alpha=0.08)


def _draw_finder(ax: Any, results: RunResults) -> None:
    """Each seed's finder curve (finite points), and a y-range that an explosion cannot squash."""
    several = len(results.finders) > 1
    finite = []
    for i, finder in enumerate(results.finders):
        pts = [(lr, loss) for lr, loss in zip(finder.lr, finder.loss) if math.isfinite(loss)]
        finite += [loss for _, loss in pts]
        if pts:
            label = (
                f"finder curve (seed {finder.seed})" if several else "finder curve (smoothed loss)"
            )
            shade = 0.15 + 0.55 * i / max(1, len(results.finders) - 1)
            ax.plot(*zip(*pts), color=str(shade), lw=1.2, label=label)
    ax.set_xscale("log")
    if finite:
        # The end of a curve can shoot up by orders of magnitude; it leaves through the top.
        low, typical = min(finite), statistics.median(finite)
        ax.set_ylim(low - 0.1 * (typical - low), min(max(finite), 2 * typical) * 1.05)


def plot_lr_finder(results: RunResults, path: Path) -> Path:
    """The finder's curve, each rule's suggestion, and the trial LRs marked with their results."""
    fig, ax = plt.subplots(figsize=(10, 5.5))
    _draw_finder(ax, results)
    _mark_rules(ax, results)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("finder loss (smoothed training MSE)")
    metric = results.comparison.metric.replace("_", " ")
    for row in _distinct_rows(results):
        if row.source != "grid":
            continue
        color = VERDICT_COLORS.get(row.verdict, "0.2")
        ax.axvline(row.lr, color=color, lw=4, alpha=0.25)
        ax.annotate(
            f" {loss_text(row, 1)}" + ("" if row.diverged_seeds else f"  {row.verdict}"),
            xy=(row.lr, 0.02),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color=color,
            rotation=90,
            ha="right",
            va="bottom",
        )
    ax.set_title(
        f"LR finder (Lightning {results.lightning_version}) and the fixed-LR trials "
        f"(bands: trial LRs, with their final {metric} and verdict)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_lr_sweep(results: RunResults, path: Path) -> Path:
    """Final loss against LR for every trial (log-log), with the finder's curve on a second axis."""
    fig, ax = plt.subplots(figsize=(9, 6))
    metric = results.comparison.metric.replace("_", " ")
    finals = [t.final_loss for t in results.trials if not t.diverged and t.final_loss is not None]
    ceiling = max(finals) * 3 if finals else 1.0
    for role, marker in (("fixed", "o"), ("finder_check", "D")):
        for t in results.trials:
            if t.role != role:
                continue
            color = VERDICT_COLORS.get(t.verdict, "0.2")
            y = ceiling if t.diverged else t.final_loss
            ax.scatter(t.lr, y, marker="x" if t.diverged else marker, color=color, s=50, zorder=3)
    grid_rows = sorted(
        (r for r in results.comparison.rows if r.source == "grid" and r.mean is not None),
        key=lambda r: r.lr,
    )
    if grid_rows:
        xs = [r.lr for r in grid_rows]
        ax.plot(
            xs,
            [r.mean for r in grid_rows],
            "-",
            color="0.5",
            lw=1,
            zorder=2,
            label=f"mean final {metric} (grid)",
        )
        if len(results.seeds) > 1:
            ax.fill_between(
                xs,
                [r.spread[0] for r in grid_rows],
                [r.spread[1] for r in grid_rows],
                color="0.5",
                alpha=0.2,
                label="min..max over seeds",
            )
    for verdict_name, color in VERDICT_COLORS.items():
        if any(t.verdict == verdict_name for t in results.trials):
            ax.scatter(
                [],
                [],
                color=color,
                marker="x" if verdict_name == "diverged" else "o",
                label=verdict_name + (" (drawn at top)" if verdict_name == "diverged" else ""),
            )
    ax.scatter([], [], color="0.3", marker="D", label="finder-check trial")
    _mark_rules(ax, results)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"final {metric} (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax2 = ax.twinx()
    _draw_finder(ax2, results)
    for line in ax2.get_lines():
        line.set_alpha(0.45)
    ax2.set_ylabel("LR finder loss (smoothed, grey curve)", color="0.5")
    ax.set_zorder(ax2.get_zorder() + 1)  # trials in front of the finder's curve
    ax.patch.set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    handles2, labels2 = ax2.get_legend_handles_labels()
    ax.legend(
        handles + handles2,
        labels + labels2,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=4,
    )
    ax.set_title(
        "Learning-rate sweep: what training achieved (left axis) vs. the LR finder's curve (right axis)",
        fontsize=9,
    )
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    try:
        atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
