"""Rank the trials and read the answer: was the finder right? Pure functions of the records.

Fixed trials are grouped by LR across seeds. Each finder rule is one row holding, per seed, that
seed's suggestion and the trial trained at it; a rule's LR is the lower median of its suggestions
(always one that was suggested and trained). Rows rank by their mean final value over seeds (the
validation metric when there is one, else the training loss), in ``metric_mode``'s direction
(:mod:`lr_lab.analysis.measure`). A row with a diverged seed, an untrained suggestion, or that
covers only some seeds gets no rank. Two rules that chose the same LRs share trials and a rank.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from lr_lab.analysis.measure import Measure
from lr_lab.analysis.recommendation import Recommendation, recommend
from lr_lab.analysis.records import TrialResult, full_trial_at
from lr_lab.analysis.results import RunResults


@dataclass
class Row:
    """One line of the comparison: a fixed LR, or one rule's suggestions, over all seeds."""

    label: str  # "0.01" for a fixed LR, the rule name for a rule, the peer's ("prodigy")
    source: str  # "grid", "rule", "search" or "baseline"
    lrs: list[float]  # one per seed that has this LR (suggested, for a rule)
    trial_names: list[str]  # "seed0/lr=0.01": the trials trained at those LRs
    finals: list[float | None]  # final loss per trial (None: diverged)
    n_seeds: int  # seeds in the run
    mean: float | None = None
    spread: tuple[float, float] | None = None  # (min, max) over seeds
    history: list[float] = field(default_factory=list)  # mean per-epoch loss over seeds
    rank: int | None = None
    ratio_to_best_fixed: float | None = None  # the ratio of gaps, when the metric has a bound
    vs_best_fixed: str = ""  # "1.23x", "+0.031" (no bound): see lr_lab.analysis.measure
    verdict: str = ""
    group: list[str] = field(default_factory=list)  # labels of the rows with the same trials
    note: str = ""  # why a rule has no suggestion for some seed

    @property
    def lr(self) -> float | None:
        """The row's learning rate (for a rule: the median of its per-seed suggestions)."""
        return statistics.median_low(self.lrs) if self.lrs else None

    @property
    def lr_min(self) -> float | None:
        """The smallest per-seed LR."""
        return min(self.lrs) if self.lrs else None

    @property
    def lr_max(self) -> float | None:
        """The largest per-seed LR."""
        return max(self.lrs) if self.lrs else None

    @property
    def comparable(self) -> bool:
        """Whether the row has a mean over every seed (and so can be ranked)."""
        return self.mean is not None and len(self.finals) == self.n_seeds

    @property
    def diverged_seeds(self) -> int:
        """How many of the row's trials diverged."""
        return sum(v is None for v in self.finals)

    @property
    def is_rule(self) -> bool:
        """Whether the row is a finder rule's (not a grid LR)."""
        return self.source == "rule"


@dataclass
class BestFixed:
    """The best fixed learning rate of the grid (by the metric, in its direction)."""

    lr: float
    loss: float


@dataclass
class Comparison:
    """The ranked rows and the answer to "was the finder right?"."""

    metric: str  # "val_loss" (or the user's metric) or "train_loss"
    mode: str  # "min" or "max": which way is better
    measure: Measure  # how values compare (direction, bound)
    n_ranked: int
    rows: list[Row]  # ranked first, then unranked
    rules: dict[str, Row]  # each rule's row (also in rows), in the order the rules ran
    best_fixed: BestFixed | None
    recommendation: Recommendation | None  # the study's most trusted rule that ran here
    lowest: Recommendation | None  # the best value observed (grid or rule)
    order_differs: list[int] = field(default_factory=list)  # seeds whose trials saw other data

    @property
    def lightning(self) -> Row | None:
        """Lightning's own suggestion's row, if that rule ran."""
        return self.rules.get("lightning")

    def to_json(self) -> dict[str, Any]:
        """The comparison as stored in ``results.json``."""
        rows = []
        for row in self.rows:
            data = asdict(row)
            data.update(lr=row.lr, lr_min=row.lr_min, lr_max=row.lr_max)
            data["diverged_seeds"] = row.diverged_seeds
            rows.append(data)
        light, by_rule = self.lightning, {r["label"]: r for r in rows if r["source"] == "rule"}
        return {
            "metric": self.metric,
            "metric_mode": self.mode,
            "vs_best": self.measure.describe(self.metric),
            "n_ranked": self.n_ranked,
            "rows": rows,
            "best_fixed": asdict(self.best_fixed) if self.best_fixed else None,
            "suggested_lr": light.lr if light else None,
            "suggested_loss": light.mean if light else None,
            "suggested_rank": light.rank if light else None,
            "ratio_to_best": light.ratio_to_best_fixed if light else None,
            "rules": {n: by_rule[n] for n in self.rules},
            "recommendation": asdict(self.recommendation) if self.recommendation else None,
            "lowest": asdict(self.lowest) if self.lowest else None,
            "order_differs": self.order_differs,
        }


def _history(trial: TrialResult, use_val: bool) -> list[float]:
    return list(trial.val_loss if use_val else trial.train_loss)


def final_loss(trial: TrialResult) -> float | None:
    """A trial's final value for ranking: None when it diverged or has none."""
    value = trial.final_loss
    return None if trial.diverged or value is None or not math.isfinite(value) else value


def _row(label: str, source: str, lrs: list[float], trials: list[TrialResult], use_val: bool,
         n_seeds: int) -> Row:  # fmt: skip
    row = Row(
        label=label,
        source=source,
        lrs=lrs,
        trial_names=[t.key for t in trials],
        finals=[final_loss(t) for t in trials],
        n_seeds=n_seeds,
    )
    if trials and row.diverged_seeds == 0:
        finals = [v for v in row.finals if v is not None]
        row.mean = statistics.fmean(finals)
        row.spread = (min(finals), max(finals))
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
            if (trial := full_trial_at(by_seed.get(finder.seed, []), lr, rule)) is not None:
                trials.append(trial)
        row = _row(rule, "rule", lrs, trials, use_val, n_seeds)
        row.note = "; ".join(notes)
        rows.append(row)
    if results.searches:  # the search's winner on each seed, trained to the full budget
        keys = {t.key: t for t in results.trials}
        won = [s for s in sorted(results.searches, key=lambda s: s.seed) if s.trial in keys]
        row = _row("search", "search", [s.lr for s in won], [keys[s.trial] for s in won],
                   use_val, n_seeds)  # fmt: skip
        row.note = "; ".join(f"seed {s.seed}: {s.fallback}" for s in results.searches if not s.lr)
        rows.append(row)
    keys = {t.key: t for t in results.trials}
    for name in dict.fromkeys(b.name for b in results.baselines):  # the peers, as configured
        peers = sorted((b for b in results.baselines if b.name == name), key=lambda b: b.seed)
        won = [b for b in peers if b.trial in keys]
        row = _row(name, "baseline", [b.lr or 0.0 for b in won], [keys[b.trial] for b in won],
                   use_val, n_seeds)  # fmt: skip
        row.note = "; ".join(dict.fromkeys(b.note for b in peers if b.note))
        rows.append(row)
    return rows


def _lowest(same: list[Row]) -> Recommendation | None:
    """The best value observed, and where it came from (the grid, or every rule that chose it)."""
    if not same or same[0].mean is None:
        return None
    rules = [r.label for r in same if r.is_rule]
    top = same[0]
    if any(r.source == "grid" for r in same):
        source = "grid"
    elif rules:
        source = "rule " + "+".join(rules)
    else:
        source = top.label if top.source == "search" else f"{top.source} {top.label}"
    return Recommendation(top.lr, top.lr_min, top.lr_max, top.mean, source, top.rank)


def order_differs(results: RunResults) -> list[int]:
    """Seeds whose trials (and finder) did not all see the same first batch."""
    seeds = []
    for seed in results.seeds:
        hashes = {t.first_batch_sha256 for t in results.trials if t.seed == seed}
        hashes |= {f.first_batch_sha256 for f in results.finders if f.seed == seed}
        if len(hashes - {""}) > 1:
            seeds.append(seed)
    return seeds


def compare(results: RunResults, rules: list[str]) -> Comparison:
    """Verdicts for every trial, the ranked rows, and the answer to "was the finder right?".

    Sets ``verdict`` on each trial in ``results`` (within its seed).

    Args:
        results: The finished (or partly finished) run.
        rules: The finder rules that ran, in order.

    Returns:
        The comparison.
    """
    use_val = any(t.val_loss for t in results.trials)
    # Without validation the training loss ranks, and it is a loss: lower is better.
    mode = results.metric_mode if use_val else "min"
    for seed in {t.seed for t in results.trials}:
        trials = [t for t in results.trials if t.seed == seed]
        finals = [f for t in trials if (f := final_loss(t)) is not None]
        measure = Measure.of(mode, finals)
        best = min(finals, key=measure.key, default=None)
        for t in trials:
            t.verdict = measure.verdict(_history(t, use_val), final_loss(t) is None,
                                        final_loss(t), best)  # fmt: skip

    rows = _rows(results, rules, use_val)
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        if row.trial_names:
            groups.setdefault(tuple(row.trial_names), []).append(row)
    measure = Measure.of(mode, [r.mean for r in rows])
    ranked_means = sorted({r[0].mean for r in groups.values() if r[0].comparable}, key=measure.key)
    fixed_rows = [r for r in rows if r.source == "grid" and r.comparable]
    best_fixed = min(fixed_rows, key=lambda r: measure.key(r.mean)) if fixed_rows else None
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
            row.rank = 1 + sum(measure.better(m, row.mean) for m in ranked_means)
            if best_fixed:
                versus = measure.versus(row.mean, best_fixed.mean)
                row.vs_best_fixed = Measure.text(versus)
                row.ratio_to_best_fixed = versus[0] if versus[1] == "x" else None
        row.verdict = measure.verdict(row.history, row.mean is None, row.mean, best_mean)
    ranked = sorted(
        rows, key=lambda r: (r.rank is None, r.rank or 0, not r.trial_names, r.source != "grid")
    )
    top = next((r for r in ranked if r.rank == 1), None)
    rule_rows = {r.label: r for r in rows if r.is_rule}
    return Comparison(
        metric=(results.metric if use_val else "train_loss"),
        mode=mode,
        measure=measure,
        n_ranked=len(ranked_means),
        rows=ranked,
        rules=rule_rows,
        best_fixed=BestFixed(best_fixed.lr, best_fixed.mean) if best_fixed else None,
        recommendation=recommend(results, rows, rule_rows),
        lowest=_lowest(groups[tuple(top.trial_names)] if top else []),
        order_differs=order_differs(results),
    )
