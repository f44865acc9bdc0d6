"""The report: the console table and answer, the PNG plots, and TensorBoard text and figures.

Everything here reads the finished :class:`~lr_lab.results.RunResults`; nothing is measured here,
so what is printed, plotted and logged always agrees with ``results.json``.
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
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

from lr_lab.results import RunResults, TrialResult  # noqa: E402

SUMMARY_RUN = "summary"
VERDICT_COLORS = {
    "best": "tab:green",
    "good": "tab:blue",
    "slow": "tab:orange",
    "poor": "tab:brown",
    "unstable": "tab:purple",
    "diverged": "tab:red",
}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _loss_text(row: dict[str, Any], n_seeds: int) -> str:
    seeds = len(row["finals"])
    if not seeds:
        return "not trained" if row["lrs"] else "-"
    if row["diverged_seeds"]:
        return f"diverged ({row['diverged_seeds']}/{seeds} seeds)" if n_seeds > 1 else "diverged"
    text = _fmt(row["mean"])
    if n_seeds > 1 and row["spread"] and row["spread"][0] != row["spread"][1]:
        text += f" ({_fmt(row['spread'][0], 3)}..{_fmt(row['spread'][1], 3)})"
    if seeds < n_seeds:
        text += f" [{seeds}/{n_seeds} seeds]"
    return text


def _table(results: RunResults) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row of cells per comparison row, and notes on rules without a suggestion."""
    comp = results.comparison
    n_seeds = len(results.seeds)
    metric = comp["metric"].replace("_", " ")
    header = [
        "rank",
        "learning rate" + (" median (min..max)" if n_seeds > 1 else ""),
        "from",
        f"final {metric}" + (" mean (min..max)" if n_seeds > 1 else ""),
        "vs best fixed",
        "verdict",
    ]
    lines = []
    for row in comp["rows"]:
        ratio = row["ratio_to_best_fixed"]
        lines.append(
            [
                str(row["rank"]) if row["rank"] else "-",
                _lr_range(row, label="", digits=2) if row["lrs"] else "-",
                "grid" if row["source"] == "grid" else f"rule {row['label']}",
                _loss_text(row, n_seeds),
                f"{ratio:.3g}x" if ratio is not None else "-",
                row["verdict"] or "-",
            ]
        )
    notes = [
        f"{r['label']}: {r['note']}" for r in comp["rows"] if r["source"] == "rule" and r["note"]
    ]
    return header, lines, notes


def format_table(results: RunResults) -> str:
    """The ranked comparison as a plain-text table (one row per grid LR and per rule)."""
    header, lines, notes = _table(results)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    text = [fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)]
    if notes:
        text += ["No suggestion from:", *(f"  {n}" for n in notes)]
    return "\n".join(text)


def _lr_range(item: dict[str, Any], label: str = "per seed ", digits: int = 3) -> str:
    """``0.01``, or ``0.01 (per seed 0.008..0.02)`` when the seeds disagree."""
    text = _fmt(item["lr"], 3)
    if item.get("lr_min") is not None and item["lr_min"] != item["lr_max"]:
        text += f" ({label}{_fmt(item['lr_min'], digits)}..{_fmt(item['lr_max'], digits)})"
    return text


def answer(results: RunResults) -> str:
    """One paragraph: best fixed LR, the finder's suggestion, how it did, and what to use."""
    comp = results.comparison
    metric = comp["metric"].replace("_", " ")
    n_seeds = len(results.seeds)
    parts = []
    best = comp["best_fixed"]
    if best:
        parts.append(f"Best fixed LR: {_fmt(best['lr'], 3)} ({metric} {_fmt(best['loss'])}).")
    else:
        parts.append("No fixed-LR trial finished without diverging.")
    rules = comp.get("rules", {})
    if "lightning" in rules:
        light = rules["lightning"]
        said = f"Lightning's LR finder suggested {_lr_range(light)}"
        if light["lr"] is None:
            parts.append(f"Lightning's LR finder gave no suggestion ({light['note']}).")
        elif light["verdict"] == "not verified":
            parts.append(f"{said}; it was not trained (finder.verify is off).")
        elif light["diverged_seeds"]:
            seeds = (
                f" on {light['diverged_seeds']} of {light['trained']} seeds" if n_seeds > 1 else ""
            )
            parts.append(f"{said}; trained from the same initial weights it diverged{seeds}.")
        elif light["rank"] is None:
            parts.append(
                f"{said} for {light['seeds']} of {n_seeds} seeds; trained there it reached "
                f"{metric} {_fmt(light['loss'])} (not ranked: not every seed had a suggestion)."
            )
        else:
            ratio = light["ratio_to_best"]
            parts.append(
                f"{said}; trained from the same initial weights and data order it reached "
                f"{metric} {_fmt(light['loss'])}, rank {light['rank']} of {comp['n_ranked']}"
                + (f", {ratio:.3g}x the best fixed loss." if ratio else ".")
            )
    others = {k: v for k, v in rules.items() if k != "lightning" and v["rank"] is not None}
    if others:
        name, best_rule = min(others.items(), key=lambda kv: kv[1]["loss"])
        parts.append(
            f"Of the other rules, {name} did best: LR {_lr_range(best_rule)}, {metric} "
            f"{_fmt(best_rule['loss'])}, rank {best_rule['rank']}."
        )
    rec = comp.get("recommendation")
    if rec:
        parts.append(
            f"Recommendation: LR {_lr_range(rec)} ({rec['source']}), the lowest {metric} observed."
        )
    if n_seeds > 1:
        parts.append(f"Losses are means over seeds {results.seeds}.")
    return " ".join(parts)


def _trials_by_name(results: RunResults) -> dict[str, TrialResult]:
    return {f"seed{t.seed}/{t.name}": t for t in results.trials}


def _distinct_rows(results: RunResults) -> list[dict[str, Any]]:
    """The rows that trained something, once per set of trials (rules may share one)."""
    seen, rows = set(), []
    for row in results.comparison["rows"]:
        key = tuple(row["trial_names"])
        if key and key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def _row_label(row: dict[str, Any]) -> str:
    if row["source"] == "grid":
        return f"lr={_fmt(row['lr'], 3)} ({row['verdict']})"
    return f"{'+'.join(row['group'])} lr={_fmt(row['lr'], 3)} ({row['verdict']})"


def plot_loss_curves(results: RunResults, path: Path) -> Path:
    """Per-epoch training (and validation) loss of every trial, overlaid, log-scale loss.

    With several seeds each line is the mean over seeds and the band spans min..max.
    """
    by_name = _trials_by_name(results)
    panels = ["train_loss"] + (["val_loss"] if results.comparison["metric"] == "val_loss" else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels) + 3, 4.8), squeeze=False)
    rows = _distinct_rows(results)
    colors = plt.cm.viridis([i / max(1, len(rows) - 1) for i in range(len(rows))])
    for ax, key in zip(axes[0], panels):
        shown: list[float] = []
        stops: list[int] = []
        for row, color in zip(rows, colors):
            trials = [by_name[n] for n in row["trial_names"] if n in by_name]
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
            style = "-" if row["source"] == "grid" else "--"
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
    for i, (name, rule) in enumerate(comp.get("rules", {}).items()):
        if rule["lr"] is None:
            continue
        ax.axvline(
            rule["lr"],
            color=f"C{i + 3}",
            ls=styles[i % 4],
            lw=1.5,
            label=f"{name}: {_fmt(rule['lr'], 3)}",
        )
        if rule["lr_min"] is not None and rule["lr_min"] != rule["lr_max"]:
            ax.axvspan(rule["lr_min"], rule["lr_max"], color=f"C{i + 3}", alpha=0.08)


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
    metric = results.comparison["metric"].replace("_", " ")
    for row in _distinct_rows(results):
        if row["source"] != "grid":
            continue
        color = VERDICT_COLORS.get(row["verdict"], "0.2")
        ax.axvline(row["lr"], color=color, lw=4, alpha=0.25)
        ax.annotate(
            f" {_loss_text(row, 1)}" + ("" if row["diverged_seeds"] else f"  {row['verdict']}"),
            xy=(row["lr"], 0.02),
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
    metric = results.comparison["metric"].replace("_", " ")
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
        (r for r in results.comparison["rows"] if r["source"] == "grid" and r["mean"] is not None),
        key=lambda r: r["lr"],
    )
    if grid_rows:
        xs = [r["lr"] for r in grid_rows]
        ax.plot(
            xs,
            [r["mean"] for r in grid_rows],
            "-",
            color="0.5",
            lw=1,
            zorder=2,
            label=f"mean final {metric} (grid)",
        )
        if len(results.seeds) > 1:
            ax.fill_between(
                xs,
                [r["spread"][0] for r in grid_rows],
                [r["spread"][1] for r in grid_rows],
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_report(results: RunResults) -> str:
    """The answer and the table as Markdown, for TensorBoard's Text tab."""
    header, lines, notes = _table(results)
    row = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    table = [row(header), "|" + "---|" * len(header), *map(row, lines)]
    return "\n".join(
        [answer(results), "", *table, "", *(f"- no suggestion from {n}" for n in notes)]
    )


def write_report(results: RunResults, run_dir: Path) -> list[Path]:
    """Draw the PNGs and log the comparison, verdicts and figures to TensorBoard.

    Args:
        results: The complete run.
        run_dir: The run folder.

    Returns:
        The PNG files written.
    """
    pngs = [plot_loss_curves(results, run_dir / "loss_curves.png")]
    if results.finders:
        pngs += [
            plot_lr_finder(results, run_dir / "lr_finder.png"),
            plot_lr_sweep(results, run_dir / "lr_sweep.png"),
        ]
    with SummaryWriter(str(run_dir / SUMMARY_RUN)) as writer:
        writer.add_text("comparison", markdown_report(results))
        for finder in results.finders:
            lines = [
                f"- **{rule}**: {_fmt(lr, 3)}"
                + (f" ({finder.rule_notes[rule]})" if rule in finder.rule_notes else "")
                for rule, lr in finder.rules.items()
            ]
            flags = finder.flags()
            writer.add_text(
                f"finder/seed{finder.seed}", "\n".join(lines + [f"- note: {f}" for f in flags])
            )
        writer.add_text(
            "verdicts", "\n".join(f"- {t.seed}/{t.name}: **{t.verdict}**" for t in results.trials)
        )
        for png in pngs:
            figure = plt.imread(png)
            writer.add_image(png.stem, figure[..., :3], dataformats="HWC")
    for t in results.trials:
        with SummaryWriter(str(run_dir / t.tb_run)) as writer:
            writer.add_text("verdict", f"**{t.verdict}** (lr {t.lr:.3g}, {t.role})")
    return pngs
