"""The answer in words: the ranked table and one paragraph, for the console and TensorBoard.

Reads the finished :class:`~lr_lab.results.RunResults` only; nothing is measured here, so what is
printed always agrees with ``results.json``.
"""

from __future__ import annotations

import math

from lr_lab.analysis.comparison import Comparison, Row
from lr_lab.analysis.recommendation import (
    RECOMMEND_AT,
    SEARCH_STUDY_SIZE,
    STUDY_SIZE,
    TRUSTED_RULES,
    Recommendation,
)
from lr_lab.analysis.results import RunResults
from lr_lab.report.progress import rung_text


def fmt(value: float | None, digits: int = 4) -> str:
    """A number in ``digits`` significant digits, ``-`` for None or non-finite."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def lr_text(lr: float | None, lr_min: float | None, lr_max: float | None, label: str = "") -> str:
    """``0.01``, or ``0.01 (per seed 0.008..0.02)`` when the seeds disagree (one precision)."""
    text = fmt(lr, 3)
    if lr_min is not None and lr_max is not None and fmt(lr_min, 3) != fmt(lr_max, 3):
        text += f" ({label}{fmt(lr_min, 3)}..{fmt(lr_max, 3)})"
    return text


def loss_text(row: Row, n_seeds: int) -> str:
    """A row's final loss: mean and (min..max) over seeds, or why there is none."""
    seeds = len(row.finals)
    if not seeds:
        return "not trained" if row.lrs else "-"
    if row.diverged_seeds:
        return f"diverged ({row.diverged_seeds}/{seeds} seeds)" if n_seeds > 1 else "diverged"
    text = fmt(row.mean)
    if n_seeds > 1 and row.spread and fmt(row.spread[0], 3) != fmt(row.spread[1], 3):
        text += f" ({fmt(row.spread[0], 3)}..{fmt(row.spread[1], 3)})"
    if seeds < n_seeds:
        text += f" [{seeds}/{n_seeds} seeds]"
    return text


def _metric(comp: Comparison) -> str:
    return comp.metric.replace("_", " ")


def ranked_by(comp: Comparison) -> str:
    """``Ranked by the final val_acc, higher is better; vs best fixed: ...``: rank and measure."""
    direction = "higher" if comp.mode == "max" else "lower"
    why = " (no validation: the training loss)" if comp.metric == "train_loss" else ""
    vs_best = f"; {comp.measure.describe(comp.metric)}" if comp.best_fixed else ""  # its column
    return f"Ranked by the final {comp.metric}{why}, {direction} is better{vs_best}."


def table_cells(results: RunResults) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row of cells per comparison row, and notes (rules without a suggestion)."""
    comp = results.comparison
    n_seeds = len(results.seeds)
    header = [
        "rank",
        "learning rate" + (" median (min..max)" if n_seeds > 1 else ""),
        "from",
        f"final {_metric(comp)}" + (" mean (min..max)" if n_seeds > 1 else ""),
        "vs best fixed",
        "verdict",
    ]
    lines = []
    for row in comp.rows:
        lines.append(
            [
                str(row.rank) if row.rank else "-",
                _lr_cell(row),
                row_source(row),
                loss_text(row, n_seeds),
                row.vs_best_fixed or "-",
                row.verdict or "-",
            ]
        )
    if comp.best_fixed is None:  # no grid trial finished: a column of dashes says nothing
        header.pop(4)
        lines = [cells[:4] + cells[5:] for cells in lines]
    notes = [f"{r.label}: {r.note}" for r in comp.rows if r.is_rule and r.note]
    return header, lines, notes


def row_source(row: Row) -> str:
    """The table's "from": ``grid``, ``search``, ``rule valley``, ``prodigy (LR-free)``."""
    if row.source in ("grid", "search"):
        return row.source
    if row.source == "baseline":
        return "optuna (TPE)" if row.label == "optuna" else f"{row.label} (LR-free)"
    return f"rule {row.label}"


def _lr_cell(row: Row) -> str:
    if not row.lrs:
        return "-"
    if row.source == "baseline" and row.label != "optuna":  # its own, learned step size
        return "own" if not row.lr else f"own (lr={fmt(row.lr, 3)})"
    return lr_text(row.lr, row.lr_min, row.lr_max)


def format_table(results: RunResults) -> str:
    """The ranked comparison as a plain-text table (one row per grid LR and per rule)."""
    header, lines, notes = table_cells(results)
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]

    def fmt_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    text = [fmt_row(header), fmt_row(["-" * w for w in widths]), *map(fmt_row, lines)]
    text.append(ranked_by(results.comparison))
    if notes:
        text += ["No suggestion from:", *(f"  {n}" for n in notes)]
    peers = [r for r in results.comparison.rows if r.source == "baseline" and r.note]
    if peers:
        text += ["Peers:", *(f"  {r.label}: {r.note}" for r in peers)]
    return "\n".join(text)


def _lightning_sentence(results: RunResults, light: Row, metric: str) -> str:
    comp, n_seeds = results.comparison, len(results.seeds)
    said = f"Lightning's LR finder suggested {lr_text(light.lr, light.lr_min, light.lr_max, 'per seed ')}"
    if light.lr is None:
        return f"Lightning's LR finder gave no suggestion ({light.note})."
    if light.verdict == "not verified":
        return f"{said}; it was not trained (finder.verify is off)."
    if light.diverged_seeds:
        seeds = f" on {light.diverged_seeds} of {len(light.finals)} seeds" if n_seeds > 1 else ""
        return f"{said}; trained from the same initial weights it diverged{seeds}."
    if light.rank is None:
        return (
            f"{said} for {len(light.lrs)} of {n_seeds} seeds; trained there it reached {metric} "
            f"{fmt(light.mean)} (not ranked: not every seed had a suggestion)."
        )
    versus = light.vs_best_fixed
    return (
        f"{said}; trained from the same initial weights and data order it reached {metric} "
        f"{fmt(light.mean)}, rank {light.rank} of {comp.n_ranked}"
        + (f" ({versus} against the best fixed LR)." if versus and versus != "-" else ".")
    )


def _where(rec: Recommendation) -> str:
    """``0.0316 (per seed 0.0275..0.0363, rule steep_log)``: the LR and its source, one bracket."""
    where = lr_text(rec.lr, rec.lr_min, rec.lr_max, "per seed ")
    if "(" in where:
        return f"{where[:-1]}, {rec.source})"
    return f"{where} ({rec.source})"


def _search_sentence(results: RunResults, rec: Recommendation, metric: str) -> str:
    """The search's answer: the LR, its verified metric, what it cost, how often it is right."""
    race = min(results.searches, key=lambda s: s.seed)
    rungs = ", then ".join(rung_text(r.lrs, r.epochs) for r in race.rungs) or "no race"
    share = rec.search_steps / rec.grid_steps if rec.grid_steps else None
    trust = (
        f"; lr_lab's study found the search within 1.5x of the best grid LR on "
        f'{100 * rec.study_hit_rate:.0f}% of {SEARCH_STUDY_SIZE} problem-seeds (README, "Which '
        f'approach to use")'
        if rec.study_hit_rate is not None
        else ""
    )
    seeds = (
        f" (seed {race.seed}; every seed's race is in results.json)"
        if len(results.searches) > 1
        else ""
    )
    return (
        f"Recommendation: LR {_where(rec)}, verified: trained to the full budget it reached "
        f"{metric} {fmt(rec.loss)} (rank {rec.rank}). The search raced LRs around the finder's "
        f"trusted rules ({rungs}){seeds}; choosing cost {rec.search_steps:,} training steps"
        + (f", {100 * share:.0f}% of a 13-LR grid" if share else "")
        + trust
        + "."
    )


def _peers_sentence(results: RunResults, metric: str) -> str:
    """What the peers reached, their rank, and what each cost (README, "The peers")."""
    said = []
    for row in (r for r in results.comparison.rows if r.source == "baseline"):
        peers = [b for b in results.baselines if b.name == row.label]
        steps = sum(b.steps for b in peers)
        got = (f"{metric} {fmt(row.mean)}, rank {row.rank}" if row.rank
               else loss_text(row, len(results.seeds)))  # fmt: skip
        if row.label == "optuna":
            budget = sum(b.budget for b in peers)
            lr = lr_text(row.lr, row.lr_min, row.lr_max, "per seed ") if row.lrs else "no LR"
            said.append(f"Optuna (TPE with pruning, {sum(b.trials for b in peers)} trials, "
                        f"{steps:,} of the {budget:,} steps the search spent, its winner's training "
                        f"included) chose {lr}: {got}")  # fmt: skip
        else:
            said.append(f"{row_source(row)}: {got} ({steps:,} steps)")
    return "Peers: " + "; ".join(said) + "."


def answer(results: RunResults) -> str:
    """One paragraph: best fixed LR, the finder's suggestion, how it did, and what to use."""
    comp = results.comparison
    metric = _metric(comp)
    parts = []
    if comp.best_fixed:
        best = comp.best_fixed
        parts.append(f"Best fixed LR: {fmt(best.lr, 3)} ({metric} {fmt(best.loss)}).")
    elif any(r.source == "grid" for r in comp.rows):
        parts.append("No fixed-LR trial finished without diverging.")
    else:
        parts.append("No grid of fixed LRs (trials.lrs: []): the search's answer stands alone.")
    if comp.lightning is not None:
        parts.append(_lightning_sentence(results, comp.lightning, metric))
    others = {k: v for k, v in comp.rules.items() if k != "lightning" and v.rank is not None}
    if others:
        name, row = min(others.items(), key=lambda kv: kv[1].rank)
        parts.append(
            f"Of the other rules, {name} did best: LR "
            f"{lr_text(row.lr, row.lr_min, row.lr_max, 'per seed ')}, {metric} {fmt(row.mean)}, "
            f"rank {row.rank}."
        )
    rec, low = comp.recommendation, comp.lowest
    if rec and rec.source == "search":
        parts.append(_search_sentence(results, rec, metric))
    elif rec:
        parts.append(
            f"Recommendation: LR {_where(rec)}: of the rules this run read, lr_lab's study trusts "
            f"{rec.source.removeprefix('rule ')} most (within 1.5x of the best grid LR on "
            f'{100 * rec.study_hit_rate:.0f}% of {STUDY_SIZE} problem-seeds; README, "Which approach '
            f'to use"); here it reached {metric} {fmt(rec.loss)}, rank {rec.rank}. The search '
            f"(search.enabled) is right more often."
        )
    if not rec and comp.rules:  # the finder ran and read rules
        trusted = [n for n, hit in TRUSTED_RULES.items() if hit >= RECOMMEND_AT]
        parts.append(
            f"No recommendation: no rule that lr_lab's study trusts ({', '.join(trusted)}: "
            f"within 1.5x of the best grid LR at least {100 * RECOMMEND_AT:.0f}% of the time) "
            f"gave a suggestion that trained here without divergence."
        )
    if results.baselines:
        parts.append(_peers_sentence(results, metric))
    if low and (not rec or low.rank != rec.rank):
        word = "highest" if comp.mode == "max" else "lowest"
        where = f"LR {_where(low)}"
        if low.source.startswith("baseline"):
            peer = next(r for r in comp.rows if r.rank == low.rank and r.source == "baseline")
            where = row_source(peer)
        parts.append(f"The {word} {metric} observed: {where}, {fmt(low.loss)}.")
    if len(results.seeds) > 1:
        parts.append(f"Values are means over seeds {results.seeds}.")
    if comp.order_differs:
        parts.append(
            f"Warning: the trials of seed(s) {comp.order_differs} did not all see the same first "
            "batch (the DataModule's order is not fixed by the seed), so their losses were not "
            "measured on the same data order."
        )
    return " ".join(parts)


def markdown_tables(results: RunResults, rows_per_table: int = 10) -> dict[str, str]:
    """The ranked table as Markdown, in pages of ``rows_per_table`` rows keyed ``"rows 1-10"``.

    TensorBoard shows each text in a box of fixed height: a page fits in it, a long table would
    hide its last rows (Lightning's suggestion among them) in a scroll box.
    """
    header, lines, notes = table_cells(results)

    def md_row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    pages = {}
    for start in range(0, max(1, len(lines)), rows_per_table):
        page = lines[start : start + rows_per_table]
        key = f"rows {start + 1}-{start + len(page)}"
        table = [md_row(header), "|" + "---|" * len(header), *map(md_row, page)]
        pages[key] = "\n".join([*table, "", ranked_by(results.comparison)])
    if notes:
        last = list(pages)[-1]
        pages[last] += "\n\n" + "\n".join(f"- no suggestion from {n}" for n in notes)
    return pages
