"""The study's numbers: per problem and seed, how far each method's answer landed from the oracle.

Pure functions of run records. The oracle is the best final value of the dense fixed grid on the
same problem and seed (same initial weights, same data order); a final value is the metric's
EMA over the full budget (:func:`~lr_lab.study.methods.final_value`). A method's regret is its answer's
final value against the oracle's (:func:`~lr_lab.study.methods.regret`: ``1.3`` is 1.3x the best
loss); a diverged answer has infinite regret, a method without an answer none (a miss). A hit is
a regret of at most ``HIT``. A hit rate comes with a 95% interval from a bootstrap over problems
(the seeds of a problem move together, so problems, not problem-seeds, are resampled).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass, field

from lr_lab.analysis.measure import Measure
from lr_lab.analysis.results import RunResults
from lr_lab.study.methods import GRID_EQUAL, GRID_RACED, SEARCH, answers, final_value, regret

HIT = 1.5
TAUS = (1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)  # the performance profile's regret thresholds
GRID_LRS = 13  # the grid a user would run: every half decade from 1e-5 to 1 (cost reference)
BOOTSTRAP = 2000  # resamples; seeded, so the interval is reproducible


@dataclass
class Outcome:
    """One method on one problem and seed."""

    lr: float | None  # None: no answer (see note)
    loss: float | None = None  # its full trial's final value; None: diverged or not trained
    regret: float | None = None  # against the oracle; inf when diverged; None: no answer
    trial: str = ""  # the trial's key in the run folder ("seed0/0814_lr=0.0138_valley")
    steps: int = 0  # training steps it spent, its answer's full training included
    note: str = ""


@dataclass
class ProblemSeed:
    """One problem, one seed: the oracle and every method's outcome."""

    problem: str
    seed: int
    run_dir: str  # relative to the study folder
    family: str  # "regression", "tabular", "vision", "sequence", "transformer", ...
    families: dict[str, str]  # axis -> value label, e.g. {"optimizer": "adam"}
    best_lr: float | None
    best_loss: float | None
    full_steps: int  # one full-budget trial's steps
    grid_steps: int  # the dense grid's steps (the oracle's cost)
    finder_steps: int
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    race: dict = field(default_factory=dict)  # the search's record (bracket, rungs, winner)

    @property
    def reference_steps(self) -> int:
        """What a user's 13-LR grid costs here (the unit of every method's cost)."""
        return GRID_LRS * self.full_steps


@dataclass
class MethodSummary:
    """One method over many problem-seeds."""

    method: str
    kind: str  # "rule", "search", "peer" or "grid"
    n: int  # problem-seeds
    n_problems: int
    hits: int
    hit_rate: float
    hit_ci: tuple[float, float]  # 95% bootstrap interval over problems
    median_regret: float | None
    p90_regret: float | None
    diverged_rate: float
    no_answer_rate: float
    cost: float  # median steps spent choosing (all but the answer's full training), of a 13-LR grid
    steps: float  # median training steps spent in all (its answer's full training included)
    steps_max: int  # the most it spent on one problem-seed
    profile: list[float] = field(default_factory=list)  # share with regret <= each of TAUS


def kind_of(method: str, peers: set[str]) -> str:
    """``search``, ``grid`` (the equal-cost and raced grids), ``peer`` or ``rule``."""
    if method == SEARCH:
        return "search"
    if method in (GRID_EQUAL, GRID_RACED):
        return "grid"
    return "peer" if method in peers else "rule"


def problem_seeds(
    results: RunResults, problem: str, run_dir: str, family: str, families: dict[str, str]
) -> list[ProblemSeed]:
    """The records of one problem's run folder, one per seed."""
    out = []
    mode = results.metric_mode if any(t.val_loss for t in results.trials) else "min"
    for seed in results.seeds:
        grid = [t for t in results.trials if t.seed == seed and t.role == "fixed"]
        finals = [(f, t) for t in grid if (f := final_value(t)) is not None]
        key = Measure(mode).key
        best_loss, best = min(finals, key=lambda ft: key(ft[0])) if finals else (None, None)
        finder = next((f for f in results.finders if f.seed == seed), None)
        search = next((s for s in results.searches if s.seed == seed), None)
        record = ProblemSeed(
            problem=problem, seed=seed, run_dir=run_dir, family=family, families=dict(families),
            best_lr=best.lr if best else None, best_loss=best_loss,
            full_steps=max((t.steps for t in grid), default=0),
            grid_steps=sum(t.steps for t in grid), finder_steps=len(finder.lr) if finder else 0,
            race=asdict(search) if search else {},
        )  # fmt: skip
        for method, answer in answers(results, seed).items():
            trial = answer.trial
            outcome = Outcome(answer.lr, steps=answer.steps, note=answer.note)
            if trial is not None and best_loss is not None:
                outcome.loss = final_value(trial)
                outcome.regret = regret(outcome.loss, best_loss, trial.diverged, mode)
                outcome.trial = trial.key
            elif answer.lr is not None and not outcome.note:
                outcome.note = "not trained"
            record.outcomes[method] = outcome
        out.append(record)
    return out


def _quantile(values: list[float], q: float) -> float | None:
    """The q-quantile, nearest rank (a value that occurred; inf is a value)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _hit(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.regret is not None and outcome.regret <= HIT


def hit_interval(records: list[ProblemSeed], method: str, seed: int = 0) -> tuple[float, float]:
    """The 95% interval of the hit rate, by a bootstrap over problems (seeded: reproducible)."""
    by_problem: dict[str, list[bool]] = {}
    for r in records:
        by_problem.setdefault(r.problem, []).append(_hit(r.outcomes.get(method)))
    groups = list(by_problem.values())
    if not groups:
        return (0.0, 0.0)
    rng = random.Random(seed)
    rates = []
    for _ in range(BOOTSTRAP):
        picked = [groups[rng.randrange(len(groups))] for _ in groups]
        hits = sum(sum(g) for g in picked)
        rates.append(hits / sum(len(g) for g in picked))
    rates.sort()
    return rates[int(0.025 * BOOTSTRAP)], rates[int(0.975 * BOOTSTRAP) - 1]


def summarize(records: list[ProblemSeed], method: str, kind: str) -> MethodSummary:
    """One method's hit rate (with its interval), regrets, failures and cost over ``records``."""
    have = [r for r in records if r.best_loss is not None and method in r.outcomes]
    outcomes = [r.outcomes[method] for r in have]
    n = len(outcomes)
    regrets = [o.regret for o in outcomes if o.regret is not None]
    hits = sum(_hit(o) for o in outcomes)
    # What choosing cost: every step but the answer's own full training (which any method needs).
    costs = [max(0, o.steps - r.full_steps) / r.reference_steps
             for o, r in zip(outcomes, have) if r.reference_steps]  # fmt: skip
    return MethodSummary(
        method=method,
        kind=kind,
        n=n,
        n_problems=len({r.problem for r in have}),
        hits=hits,
        hit_rate=hits / n if n else 0.0,
        hit_ci=hit_interval(have, method),
        median_regret=statistics.median_low(regrets) if regrets else None,
        p90_regret=_quantile(regrets, 0.9),
        diverged_rate=sum(math.isinf(r) for r in regrets) / n if n else 0.0,
        no_answer_rate=sum(o.regret is None for o in outcomes) / n if n else 0.0,
        cost=statistics.median(costs) if costs else 0.0,
        steps=statistics.median(o.steps for o in outcomes) if outcomes else 0.0,
        steps_max=max((o.steps for o in outcomes), default=0),
        profile=[sum(r <= tau for r in regrets) / n if n else 0.0 for tau in TAUS],
    )


def method_order(records: list[ProblemSeed]) -> list[str]:
    """Every method seen, in the order the runs list them."""
    names: list[str] = []
    for record in records:
        names += [m for m in record.outcomes if m not in names]
    return names


def ranking(records: list[ProblemSeed], peers: set[str]) -> list[MethodSummary]:
    """Each method's summary, best first: by hit rate, then by median regret, then cost."""
    summaries = [summarize(records, m, kind_of(m, peers)) for m in method_order(records)]

    def key(s: MethodSummary) -> tuple[float, float, float]:
        median = math.inf if s.median_regret is None else s.median_regret
        return -s.hit_rate, median, s.cost

    return sorted(summaries, key=key)


def by_family(records: list[ProblemSeed], peers: set[str]) -> dict[str, list[MethodSummary]]:
    """``family -> method summaries`` (each family ranked on its own records)."""
    families = sorted({r.family for r in records})
    return {f: ranking([r for r in records if r.family == f], peers) for f in families}
