"""The report's pictures: ``loss_curves.png``, ``lr_finder.png``, ``lr_sweep.png``.

Each reads the finished :class:`~lr_lab.analysis.results.RunResults` only and is written
atomically. Losses are drawn on log axes (a loss of exactly 0, an exact fit, at the axis floor),
any other metric on a linear one. Figures are drawn without pyplot, so a notebook's own plotting
backend is never switched.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lr_lab.analysis.comparison import Row
from lr_lab.analysis.results import RunResults
from lr_lab.atomic import atomic_file
from lr_lab.report.table import fmt

VERDICT_COLORS = {
    "best": "tab:green",
    "good": "tab:blue",
    "slow": "tab:orange",
    "poor": "tab:brown",
    "unstable": "tab:purple",
    "diverged": "tab:red",
}
RULE_STYLES = {"lightning": "--", "steep_log": "-.", "valley": ":", "minimum_div10": (0, (5, 1))}
RULE_COLORS = {"lightning": "crimson", "steep_log": "darkviolet", "valley": "saddlebrown",
               "minimum_div10": "deeppink"}  # fmt: skip


def _positive(values: list[float]) -> list[float]:
    """Losses for a log axis: a 0 (an exact fit) becomes a tenth of the smallest positive one."""
    floor = min((v for v in values if v > 0), default=1e-12) / 10
    return [v if v > 0 else floor for v in values]


@dataclass
class Axis:
    """A value axis: log for losses (never negative), linear for anything else; and its ends.

    ``top`` is where a diverged trial is drawn: the bad end (the top for a loss, the bottom for a
    metric where higher is better).
    """

    log: bool
    low: float
    high: float
    top: float

    @classmethod
    def of(cls, values: list[float], higher_is_better: bool = False) -> Axis:
        """The axis for ``values`` (log if none is negative and lower is better)."""
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(True, 1e-3, 1.0, 1.0)
        if min(finite) >= 0 and not higher_is_better:
            shown = [v for v in finite if v > 0] or [1e-3]
            return cls(True, min(shown) / 2, max(shown) * 5, max(shown) * 5)
        margin = 0.08 * ((max(finite) - min(finite)) or abs(max(finite)) or 1.0)
        low, high = min(finite) - margin, max(finite) + margin
        return cls(False, low, high, low if higher_is_better else high)

    def values(self, values: list[float]) -> list[float]:
        """``values`` as drawn (a 0 on a log axis at its floor)."""
        return _positive(values) if self.log else list(values)

    def apply(self, ax: Any, name: str) -> None:
        """Set ``ax``'s scale, range and label."""
        ax.set_yscale("log" if self.log else "linear")
        ax.set_ylim(self.low, self.high)
        ax.set_ylabel(f"{name} (log scale)" if self.log else name)


def distinct_rows(results: RunResults) -> list[Row]:
    """The rows that trained something, once per set of trials (rules may share one), by LR.

    The LR-free optimizers come last: their "LR" is their own.
    """
    seen, rows = set(), []
    for row in results.comparison.rows:
        key = tuple(row.trial_names)
        if key and key not in seen:
            seen.add(key)
            rows.append(row)
    return sorted(rows, key=lambda r: (lr_free(r), r.lr))


def lr_free(row: Row) -> bool:
    """Whether the row is an LR-free optimizer's (a peer other than Optuna)."""
    return row.source == "baseline" and row.label != "optuna"


def row_colors(rows: list[Row]) -> list[Any]:
    """A colour per row: the LR's place on a log scale, dark blue (small) to orange (large).

    Neighbouring LRs look alike and the order reads off the colour; LR-free peers are greys.
    """
    scale = matplotlib.colormaps["plasma"]
    logs = [math.log10(r.lr) for r in rows if not lr_free(r) and r.lr and r.lr > 0]
    low, high = (min(logs), max(logs)) if logs else (0.0, 1.0)
    free = iter(["0.15", "0.4", "0.6", "0.3", "0.5", "0.7"])
    out = []
    for row in rows:
        if lr_free(row) or not (row.lr and row.lr > 0):
            out.append(next(free, "0.5"))
        else:  # plasma's last tenth is too pale to read on white
            out.append(scale(0.88 * (math.log10(row.lr) - low) / ((high - low) or 1.0)))
    return out


def _row_label(row: Row) -> str:
    rank = f"#{row.rank} " if row.rank else ""
    if lr_free(row):
        return f"{rank}{row.label}, LR-free ({row.verdict})"
    who = "" if row.source == "grid" else f" {'+'.join(row.group)}"
    return f"{rank}lr={fmt(row.lr, 3)}{who} ({row.verdict})"


def plot_loss_curves(results: RunResults, path: Path) -> Path:
    """Per-epoch training loss and validation metric of every trial, overlaid.

    Lines are in LR order, each its own colour (grid solid, finder checks dashed); with several
    seeds each line is the mean over seeds and the band spans min..max. A diverged trial is an x
    at the top, at the epoch it stopped in, labelled with its LR.
    """
    by_key = {t.key: t for t in results.trials}
    use_val = results.comparison.metric != "train_loss"
    panels = ["train_loss"] + (["val_loss"] if use_val else [])
    fig = Figure(figsize=(6 * len(panels) + 3.5, 5))
    axes = fig.subplots(1, len(panels), squeeze=False)
    rows = distinct_rows(results)
    colors = row_colors(rows)
    for ax, key in zip(axes[0], panels):
        higher = key == "val_loss" and results.comparison.mode == "max"
        axis = Axis.of([v for t in results.trials if not t.diverged for v in getattr(t, key)],
                        higher)  # fmt: skip
        high = axis.top
        for row, color in zip(rows, colors):
            trials = [by_key[n] for n in row.trial_names if n in by_key]
            curves = [getattr(t, key) for t in trials if not t.diverged and getattr(t, key)]
            stops = {len(getattr(t, key)) + 1 for t in trials if t.diverged}  # the epoch it was in
            for stop in stops:
                ax.plot(stop, high, "x", color=color, ms=10, mew=2.5, clip_on=False)
                ax.annotate(f"lr={fmt(row.lr, 3)}", (stop, high), xytext=(7, -3), fontsize=7,
                            textcoords="offset points", color=color, va="top",
                            annotation_clip=False)  # fmt: skip
            if not curves:
                continue
            length = min(len(c) for c in curves)
            columns = [axis.values([c[e] for c in curves]) for e in range(length)]
            epochs = list(range(1, length + 1))
            style = "-" if row.source == "grid" else (":" if lr_free(row) else "--")
            mean = [statistics.fmean(col) for col in columns]
            best = row.rank == 1  # drawn thick and on top: the line the answer is about
            ax.plot(epochs, mean, style, color=color, marker="o", ms=3, label=_row_label(row),
                    lw=2.6 if best else 1.4, zorder=4 if best else 2)  # fmt: skip
            if len(curves) > 1:
                ax.fill_between(epochs, [min(c) for c in columns], [max(c) for c in columns],
                                color=color, alpha=0.15)  # fmt: skip
        name = results.metric if key == "val_loss" else "training loss"
        axis.apply(ax, name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(f"{'Validation ' + results.metric if key == 'val_loss' else 'Training loss'} "
                     "per epoch")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if any(t.diverged for t in results.trials):
        handles.append(Line2D([], [], color="0.3", marker="x", ls="", ms=8, mew=2))
        labels.append("diverged: stopped in that epoch")
    axes[0][-1].legend(handles, labels, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1),
                       title="in LR order: #rank lr (verdict)", title_fontsize=8)  # fmt: skip
    seeds = results.seeds
    fig.suptitle(
        "Loss per epoch, every trial from the same initial weights and data order"
        + (f"; lines: mean over seeds {seeds}, bands: min..max" if len(seeds) > 1 else ""),
        fontsize=10,
    )
    return save_png(fig, path)


def save_png(fig: Figure, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically, close it."""
    fig.tight_layout()
    with atomic_file(path) as fh:
        fig.savefig(fh, dpi=110, format="png")
    return path
