"""Rank the trials and read the answer: was the finder right? Pure functions of the records.

Fixed trials are grouped by learning rate across seeds. Each finder rule is one row holding, per
seed, that seed's suggestion and the trial trained at it; a rule's LR is the median (the lower
middle value, so always an LR that was suggested and trained) of its per-seed suggestions. Rows
are ranked by their mean final loss over seeds (validation loss when there is validation, else
training loss). A row with a diverged seed, whose suggestions were not trained, or that covers
only some of the seeds (a rule without a suggestion for the others), gets no rank: its mean is
not comparable. Two rules that chose the same LRs are the same trials, and share one rank.
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
    lrs: list[float]  # one per seed that has this LR (suggested, for a rule)
    trial_names: list[str]  # "seed0/lr=0.01": the trials trained at those LRs
    finals: list[float | None]  # final loss per trial (None: diverged)
    n_seeds: int  # seeds in the run
    mean: float | None = None
    spread: tuple[float, float] | None = None  # (min, max) over seeds
    history: list[float] = field(default_factory=list)  # mean per-epoch loss over seeds
    rank: int | None = None
    ratio_to_best_fixed: float | None = None
    verdict: str = ""
    group: list[str] = field(default_factory=list)  # labels of the rows with the same trials
    note: str = ""  # why a rule has no suggestion for some seed

    @property
    def lr(self) -> float | None:
        """The row's learning rate (for a rule: the median of its per-seed suggestions)."""
        return statistics.median_low(self.lrs) if self.lrs else None

    @property
    def comparable(self) -> bool:
        """Whether the row has a mean over every seed (and so can be ranked)."""
        return self.mean is not None and len(self.finals) == self.n_seeds

    @property
    def diverged_seeds(self) -> int:
        """How many of the row's trials diverged."""
        return sum(v is None for v in self.finals)


def _history(trial: TrialResult, use_val: bool) -> list[float]:
    return list(trial.val_loss if use_val else trial.train_loss)


def _final(trial: TrialResult) -> float | None:
    value = trial.final_loss
    return None if trial.diverged or value is None or not math.isfinite(value) else value


def _row(
    label: str,
    source: str,
    lrs: list[float],
    trials: list[TrialResult],
    use_val: bool,
    n_seeds: int,
) -> Row:
    row = Row(
        label=label,
        source=source,
        lrs=lrs,
        trial_names=[f"seed{t.seed}/{t.name}" for t in trials],
        finals=[_final(t) for t in trials],
        n_seeds=n_seeds,
    )
    if trials and row.diverged_seeds == 0:
        row.mean = statistics.fmean(row.finals)
        row.spread = (min(row.finals), max(row.finals))
        histories = [_history(t, use_val) for t in trials]
        length = min(len(h) for h in histories)
        row.history = [statistics.fmean(h[i] for h in histories) for i in range(length)]
    return row


def _rows(results: RunResults, rules: list[str], use_val: bool) -> list[Row]:
    n_seeds = len(results.seeds) or 1
    by_seed: dict[int, list[TrialResult]] = {}
    for trial in results.trials:
        by_seed.setdefault(trial.seed, []).append(trial)
    fixed = [t for t in results.trials if t.role == "fixed"]
    rows = []
    for lr in sorted({t.lr for t in fixed}):
        trials = [t for t in fixed if t.lr == lr]
        rows.append(_row(f"{lr:.3g}", "grid", [t.lr for t in trials], trials, use_val, n_seeds))
    for rule in rules:
        lrs, trials, notes = [], [], []
        for finder in results.finders:
            lr = finder.rules.get(rule)
            if lr is None:
                notes.append(f"seed {finder.seed}: {finder.rule_notes.get(rule, 'no suggestion')}")
                continue
            lrs.append(lr)
            trials += [t for t in by_seed.get(finder.seed, []) if math.isclose(t.lr, lr)][:1]
        row = _row(rule, "rule", lrs, trials, use_val, n_seeds)
        row.note = "; ".join(notes)
        rows.append(row)
    return rows


def _recommendation(same: list[Row]) -> dict[str, Any] | None:
    """The best LR observed and where it came from (the grid, or every rule that chose it)."""
    if not same:
        return None
    rules = [r.label for r in same if r.source == "rule"]
    source = "grid" if len(rules) < len(same) else "rule " + "+".join(rules)
    lrs = same[0].lrs
    return {
        "lr": same[0].lr,
        "lr_min": min(lrs),
        "lr_max": max(lrs),
        "loss": same[0].mean,
        "source": source,
    }


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
    for seed in {t.seed for t in results.trials}:
        trials = [t for t in results.trials if t.seed == seed]
        best = min((f for t in trials if (f := _final(t)) is not None), default=None)
        for t in trials:
            t.verdict = verdict(_history(t, use_val), _final(t) is None, _final(t), best)

    rows = _rows(results, rules, use_val)
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        if row.trial_names:
            groups.setdefault(tuple(row.trial_names), []).append(row)
    ranked_means = sorted({r[0].mean for r in groups.values() if r[0].comparable})
    fixed_rows = [r for r in rows if r.source == "grid" and r.comparable]
    best_fixed = min(fixed_rows, key=lambda r: r.mean) if fixed_rows else None
    best_mean = ranked_means[0] if ranked_means else None
    for row in rows:
        row.group = [r.label for r in groups.get(tuple(row.trial_names), [row])]
        if not row.trial_names:
            row.verdict = "not verified" if row.lrs else "no suggestion"
            continue
        if row.mean is not None and not row.comparable:
            row.verdict = f"partial ({len(row.trial_names)}/{row.n_seeds} seeds)"
            continue
        if row.mean is not None:
            # Rank among distinct sets of trials: equal means are one set (shared by rules).
            row.rank = 1 + sum(m < row.mean for m in ranked_means)
            if best_fixed:
                row.ratio_to_best_fixed = row.mean / best_fixed.mean
        row.verdict = verdict(row.history, row.mean is None, row.mean, best_mean)
    ranked = sorted(
        rows, key=lambda r: (r.rank is None, r.rank or 0, not r.trial_names, r.source != "grid")
    )

    def row_dict(row: Row) -> dict[str, Any]:
        data = asdict(row)
        data.update(lr=row.lr, diverged_seeds=row.diverged_seeds)
        data["lr_min"], data["lr_max"] = (min(row.lrs), max(row.lrs)) if row.lrs else (None, None)
        return data

    rule_rows = {r.label: row_dict(r) for r in rows if r.source == "rule"}
    light = rule_rows.get("lightning")
    top = next((r for r in ranked if r.rank == 1), None)
    return {
        "metric": "val_loss" if use_val else "train_loss",
        "n_ranked": len(ranked_means),
        "rows": [row_dict(r) for r in ranked],
        "best_fixed": {"lr": best_fixed.lr, "loss": best_fixed.mean} if best_fixed else None,
        "suggested_lr": light["lr"] if light else None,
        "suggested_loss": light["mean"] if light else None,
        "suggested_rank": light["rank"] if light else None,
        "ratio_to_best": light["ratio_to_best_fixed"] if light else None,
        "rules": {
            name: {
                "lr": r["lr"],
                "lr_min": r["lr_min"],
                "lr_max": r["lr_max"],
                "seeds": len(r["lrs"]),  # seeds with a suggestion
                "trained": len(r["trial_names"]),
                "diverged_seeds": r["diverged_seeds"],
                "loss": r["mean"],
                "rank": r["rank"],
                "ratio_to_best": r["ratio_to_best_fixed"],
                "verdict": r["verdict"],
                "note": r["note"],
            }
            for name, r in rule_rows.items()
        },
        "recommendation": _recommendation(groups[tuple(top.trial_names)] if top else []),
    }
