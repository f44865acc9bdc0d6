"""Rank the trials and read the answer: was the finder right? Pure functions of the records.

Fixed trials are grouped by learning rate across seeds; each finder rule is one row holding, per
seed, the trial trained at that seed's suggestion. Rows are ranked by their mean final loss
(validation loss when there is validation, else training loss); a row with any diverged seed
ranks after every row that never diverged.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from lr_lab.results import RunResults, TrialResult
from lr_lab.verdicts import verdict


@dataclass
class Row:
    """One line of the comparison: a fixed LR, or one rule's suggestions, over all seeds."""

    label: str  # "0.01" for a fixed LR, the rule name for a rule
    source: str  # "grid" or "rule"
    lrs: list[float]  # one per seed (equal for the grid)
    trial_names: list[str]  # "seed0/lr=0.01", one per seed
    finals: list[float | None]
    diverged_seeds: int
    mean: float | None = None
    spread: tuple[float, float] | None = None  # (min, max) over seeds
    history: list[float] = field(default_factory=list)  # mean per-epoch loss over seeds
    rank: int = 0
    ratio_to_best_fixed: float | None = None
    verdict: str = ""
    note: str = ""  # why a rule has no suggestion

    @property
    def lr(self) -> float | None:
        """The row's learning rate (median over seeds for a rule)."""
        return statistics.median(self.lrs) if self.lrs else None


def _history(trial: TrialResult, use_val: bool) -> list[float]:
    return list(trial.val_loss if use_val else trial.train_loss)


def _final(trial: TrialResult) -> float | None:
    value = trial.final_loss
    return None if trial.diverged or value is None or not math.isfinite(value) else value


def _row(label: str, source: str, trials: list[TrialResult], use_val: bool) -> Row:
    finals = [_final(t) for t in trials]
    row = Row(
        label=label,
        source=source,
        lrs=[t.lr for t in trials],
        trial_names=[f"seed{t.seed}/{t.name}" for t in trials],
        finals=finals,
        diverged_seeds=sum(v is None for v in finals),
    )
    if trials and row.diverged_seeds == 0:
        row.mean = statistics.fmean(finals)
        row.spread = (min(finals), max(finals))
        histories = [_history(t, use_val) for t in trials]
        length = min(len(h) for h in histories)
        row.history = [statistics.fmean(h[i] for h in histories) for i in range(length)]
    return row


def _recommendation(top: Row | None, rows: list[Row]) -> dict[str, Any] | None:
    """The best LR observed and where it came from (the grid, or every rule that chose it)."""
    if top is None:
        return None
    same = [r for r in rows if r.trial_names == top.trial_names]
    if any(r.source == "grid" for r in same):
        source = "grid"
    else:
        source = "rule " + "+".join(r.label for r in same)
    return {"lr": top.lr, "loss": top.mean, "source": source}


def compare(results: RunResults, rules: list[str]) -> dict[str, Any]:
    """Verdicts for every trial, the ranked rows, and the answer to "was the finder right?".

    Sets ``verdict`` on each trial in ``results`` (within its seed) and returns the comparison
    stored as ``results.comparison``.

    Args:
        results: The finished (or partly finished) run.
        rules: The finder rules that ran, in order.

    Returns:
        A JSON-ready dict: ``metric``, ``rows`` (ranked), ``best_fixed``, the Lightning
        suggestion's ``suggested_lr``/``suggested_loss``/``suggested_rank``/``ratio_to_best``,
        ``rules`` (per rule: LR spread over seeds, verified loss, rank, ratio) and
        ``recommendation``.
    """
    use_val = any(t.val_loss for t in results.trials)
    by_seed: dict[int, list[TrialResult]] = {}
    for trial in results.trials:
        by_seed.setdefault(trial.seed, []).append(trial)
    for trials in by_seed.values():
        finals = [f for t in trials if (f := _final(t)) is not None]
        best = min(finals) if finals else None
        for t in trials:
            t.verdict = verdict(_history(t, use_val), _final(t) is None, _final(t), best)

    rows: list[Row] = []
    fixed = [t for t in results.trials if t.role == "fixed"]
    for lr in sorted({t.lr for t in fixed}):
        rows.append(_row(f"{lr:.3g}", "grid", [t for t in fixed if t.lr == lr], use_val))
    for rule in rules:
        trials, notes = [], []
        for finder in results.finders:
            lr = finder.rules.get(rule)
            match = [
                t for t in by_seed.get(finder.seed, []) if lr is not None and math.isclose(t.lr, lr)
            ]
            if match:
                trials.append(match[0])
            elif lr is None:
                notes.append(f"seed {finder.seed}: {finder.rule_notes.get(rule, 'no suggestion')}")
        row = _row(rule, "rule", trials, use_val)
        row.note = "; ".join(notes)
        rows.append(row)

    # Rank over distinct sets of trials, so two rules that chose the same LR share a rank.
    distinct = {tuple(r.trial_names): r for r in rows if r.trial_names}
    keyed = [
        (r.diverged_seeds > 0, r.mean if r.mean is not None else math.inf)
        for r in distinct.values()
    ]
    fixed_rows = [r for r in rows if r.source == "grid" and r.mean is not None]
    best_fixed = min(fixed_rows, key=lambda r: r.mean) if fixed_rows else None
    best_mean = min((r.mean for r in rows if r.mean is not None), default=None)
    for row in rows:
        if not row.trial_names:
            row.verdict = "no suggestion" if row.source == "rule" else ""
            continue
        key = (row.diverged_seeds > 0, row.mean if row.mean is not None else math.inf)
        row.rank = 1 + sum(other < key for other in keyed)
        if best_fixed and row.mean is not None:
            row.ratio_to_best_fixed = row.mean / best_fixed.mean
        row.verdict = verdict(row.history, row.mean is None, row.mean, best_mean)
    ranked = sorted(rows, key=lambda r: (r.rank == 0, r.rank, r.source != "grid", r.label))

    def row_dict(row: Row) -> dict[str, Any]:
        data = asdict(row)
        data["lr"] = row.lr
        if row.lrs:
            data["lr_min"], data["lr_max"] = min(row.lrs), max(row.lrs)
        return data

    rule_rows = {r.label: r for r in rows if r.source == "rule"}
    light = rule_rows.get("lightning")
    top = next((r for r in ranked if r.rank == 1 and r.mean is not None), None)
    comparison: dict[str, Any] = {
        "metric": "val_loss" if use_val else "train_loss",
        "n_ranked": len(distinct),
        "rows": [row_dict(r) for r in ranked],
        "best_fixed": {"lr": best_fixed.lr, "loss": best_fixed.mean} if best_fixed else None,
        "suggested_lr": light.lr if light else None,
        "suggested_loss": light.mean if light else None,
        "suggested_rank": light.rank if light and light.rank else None,
        "ratio_to_best": light.ratio_to_best_fixed if light else None,
        "suggestion_note": light.note if light else "",
        "rules": {
            name: {
                "lr": r.lr,
                "lr_min": min(r.lrs) if r.lrs else None,
                "lr_max": max(r.lrs) if r.lrs else None,
                "loss": r.mean,
                "rank": r.rank or None,
                "ratio_to_best": r.ratio_to_best_fixed,
                "verdict": r.verdict,
                "note": r.note,
            }
            for name, r in rule_rows.items()
        },
        "recommendation": _recommendation(top, rows),
    }
    return comparison
