"""The study's numbers: per problem and seed, how far each rule's LR landed from the grid's best.

Pure functions of run records. The regret of a rule on one problem and seed is the final loss
of the trial trained at its suggested LR over the best final loss of the dense fixed grid (the
oracle), both from the same initial weights and data order; a diverged suggestion has infinite
regret, a rule without a suggestion has none. A hit is a regret of at most ``HIT``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from lr_lab.analysis.comparison import final_loss
from lr_lab.analysis.results import RunResults

HIT = 1.5


@dataclass
class RuleOutcome:
    """One rule on one problem and seed."""

    lr: float | None  # None: the rule had no suggestion (see note)
    loss: float | None = None  # the final loss trained at lr; None: diverged or not trained
    regret: float | None = None  # loss / best grid loss; inf when diverged
    trial: str = ""  # the trial's key in the run folder ("seed0/022_lr=0.012_valley")
    note: str = ""


@dataclass
class ProblemSeed:
    """One problem, one seed: the grid's best and each rule's outcome."""

    problem: str
    seed: int
    run_dir: str  # relative to the study folder
    families: dict[str, str]  # axis -> value label, e.g. {"optimizer": "adam"}
    best_lr: float | None
    best_loss: float | None
    grid_steps: int  # optimizer steps of all grid trials
    finder_steps: int
    rules: dict[str, RuleOutcome] = field(default_factory=dict)


@dataclass
class RuleSummary:
    """One rule over many problem-seeds."""

    rule: str
    n: int
    hit_rate: float
    median_regret: float | None
    p90_regret: float | None
    diverged_rate: float
    no_suggestion_rate: float


def regret(loss: float | None, best: float, diverged: bool) -> float | None:
    """``loss / best`` (an exact fit's 0/0 is 1); inf when the trial diverged."""
    if diverged:
        return math.inf
    if loss is None:
        return None
    if best > 0:
        return loss / best
    return 1.0 if loss == 0 else math.inf


def problem_seeds(
    results: RunResults, problem: str, run_dir: str, families: dict[str, str]
) -> list[ProblemSeed]:
    """The records of one problem's run folder, one per seed."""
    out = []
    for finder in results.finders:
        seed = finder.seed
        trials = [t for t in results.trials if t.seed == seed]
        grid = [t for t in trials if t.role == "fixed"]
        finals = [(f, t) for t in grid if (f := final_loss(t)) is not None]
        best_loss, best = min(finals, key=lambda ft: ft[0]) if finals else (None, None)
        record = ProblemSeed(
            problem=problem, seed=seed, run_dir=run_dir, families=dict(families),
            best_lr=best.lr if best else None, best_loss=best_loss,
            grid_steps=sum(t.steps for t in grid), finder_steps=len(finder.lr),
        )  # fmt: skip
        for rule, lr in finder.rules.items():
            if lr is None:
                record.rules[rule] = RuleOutcome(None, note=finder.rule_notes.get(rule, ""))
                continue
            trial = next((t for t in trials if math.isclose(t.lr, lr)), None)
            if trial is None or best_loss is None:
                record.rules[rule] = RuleOutcome(lr, note="not trained")
                continue
            loss = final_loss(trial)
            record.rules[rule] = RuleOutcome(
                lr, loss, regret(loss, best_loss, trial.diverged), trial.key
            )
        out.append(record)
    return out


def _quantile(values: list[float], q: float) -> float | None:
    """The q-quantile, nearest rank (a value that occurred; inf is a value)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(records: list[ProblemSeed], rule: str) -> RuleSummary:
    """One rule's hit rate, regret quantiles and failure rates over ``records``."""
    outcomes = [r.rules[rule] for r in records if rule in r.rules and r.best_loss is not None]
    n = len(outcomes)
    regrets = [o.regret for o in outcomes if o.regret is not None]
    return RuleSummary(
        rule=rule,
        n=n,
        hit_rate=sum(r <= HIT for r in regrets) / n if n else 0.0,
        median_regret=statistics.median_low(regrets) if regrets else None,
        p90_regret=_quantile(regrets, 0.9),
        diverged_rate=sum(math.isinf(r) for r in regrets) / n if n else 0.0,
        no_suggestion_rate=sum(o.lr is None for o in outcomes) / n if n else 0.0,
    )


def rule_order(records: list[ProblemSeed]) -> list[str]:
    """Every rule seen, in the order the runs list them."""
    names: list[str] = []
    for record in records:
        names += [r for r in record.rules if r not in names]
    return names


def ranking(records: list[ProblemSeed]) -> list[RuleSummary]:
    """Each rule's summary, best first: by hit rate, then by median regret."""
    summaries = [summarize(records, rule) for rule in rule_order(records)]

    def key(s: RuleSummary) -> tuple[float, float]:
        return -s.hit_rate, math.inf if s.median_regret is None else s.median_regret

    return sorted(summaries, key=key)


def by_family(records: list[ProblemSeed]) -> dict[str, dict[str, list[RuleSummary]]]:
    """``axis -> value -> rule summaries`` over the records of that family."""
    out: dict[str, dict[str, list[RuleSummary]]] = {}
    for axis in sorted({a for r in records for a in r.families}):
        values = sorted({r.families[axis] for r in records if axis in r.families})
        out[axis] = {
            value: [
                summarize([r for r in records if r.families.get(axis) == value], rule)
                for rule in rule_order(records)
            ]  # fmt: skip
            for value in values
        }
    return out
