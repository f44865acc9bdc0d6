"""What the study compares on each problem and seed, read from one run's records.

Every method is a way a user would pick an LR, and its answer is a trial trained to the full
budget from the seed's ``init.ckpt``:

- each finder rule (on both curves): the trial at its suggestion (``finder_check`` or grid);
- ``search``: the race's winner (:mod:`lr_lab.experiment.search`);
- each peer (``baselines``): an LR-free optimizer's trial, Optuna's best full trial;
- ``grid_equal_cost``: a coarse grid that costs what the search cost, read off the dense grid
  (every k-th LR, the best of them): what the same steps buy without the finder;
- ``grid_raced``: the search's race run on the dense grid's LRs instead of the finder's bracket,
  read off the grid trials' first epochs (a race trial is exactly that).

``steps`` is what a method spent until it holds a model trained at its answer: the finder, its
race or trials, and that full training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lr_lab.analysis.comparison import final_loss
from lr_lab.analysis.measure import Measure
from lr_lab.analysis.records import TrialResult
from lr_lab.analysis.results import RunResults
from lr_lab.experiment.search import score
from lr_lab.search.race import run_race, smoothed

SEARCH, GRID_EQUAL, GRID_RACED = "search", "grid_equal_cost", "grid_raced"
ORACLE_SMOOTHING = "ema"


@dataclass
class Answer:
    """A method's answer on one problem-seed: the LR, the full trial at it, the steps spent."""

    lr: float | None
    trial: TrialResult | None
    steps: int
    note: str = ""


def answers(results: RunResults, seed: int) -> dict[str, Answer]:
    """Every method's answer on ``seed`` of a finished run (rules, search, peers, grids)."""
    trials = [t for t in results.trials if t.seed == seed]
    keys = {t.key: t for t in trials}
    grid = sorted((t for t in trials if t.role == "fixed"), key=lambda t: t.lr)
    full = max((t.steps for t in grid), default=0)
    out: dict[str, Answer] = {}
    finder = next((f for f in results.finders if f.seed == seed), None)
    finder_steps = len(finder.lr) if finder else 0
    if finder is not None:
        for rule, lr in finder.rules.items():
            trial = next((t for t in trials if t.stop_epochs is None and t.lr == lr
                          and t.role in ("fixed", "finder_check")), None)  # fmt: skip
            note = finder.rule_notes.get(rule, "") if lr is None else ""
            out[rule] = Answer(lr, trial, finder_steps + full, note)
    search = next((s for s in results.searches if s.seed == seed), None)
    if search is not None:
        out[SEARCH] = Answer(search.lr, keys.get(search.trial), search.steps + full,
                             search.fallback if search.lr is None else "")  # fmt: skip
    for peer in (b for b in results.baselines if b.seed == seed):
        out[peer.name] = Answer(peer.lr, keys.get(peer.trial), peer.steps, peer.note)
    mode = results.metric_mode if any(t.val_loss for t in trials) else "min"
    if search is not None and grid:
        out[GRID_EQUAL] = equal_cost_grid(grid, out[SEARCH].steps, mode)
        cfg = results.config.get("search", {})
        out[GRID_RACED] = raced_grid(grid, cfg, results.config["trials"]["max_epochs"], mode)
    return out


def equal_cost_grid(grid: list[TrialResult], budget: int, mode: str) -> Answer:
    """The best of ``k`` evenly spread grid LRs, ``k`` full trials costing about ``budget``."""
    full = max(t.steps for t in grid)
    k = max(1, min(len(grid), round(budget / max(1, full))))
    # k points spread over the grid's span, ends included (k = 1: its middle)
    picks = sorted({round(i * (len(grid) - 1) / (k - 1)) for i in range(k)} if k > 1
                   else {len(grid) // 2})  # fmt: skip
    chosen = [grid[i] for i in picks]
    best = _best(chosen, mode)
    return Answer(best.lr if best else None, best, sum(t.steps for t in chosen),
                  "" if best else "every LR of the coarse grid diverged")  # fmt: skip


def raced_grid(grid: list[TrialResult], search: dict, max_epochs: int, mode: str) -> Answer:
    """The search's race on the dense grid's LRs, read off their first epochs."""
    full = max(t.steps for t in grid)
    per_epoch = full / max(1, max_epochs)
    by_lr = {t.lr: t for t in grid}
    steps = [0]
    how = search.get("smoothing", "ema")

    def scores_of(lrs: list[float], epochs: int, index: int) -> list[float | None]:
        steps[0] += sum(min(by_lr[lr].steps, round(per_epoch * epochs)) for lr in lrs)
        return [score(_first_epochs(by_lr[lr], epochs), how, mode) for lr in lrs]

    race = run_race([t.lr for t in grid], int(search.get("first_epochs", 1)),
                    int(search.get("eta", 3)), int(search.get("rungs", 2)),
                    float(search.get("extend", 0.05)), max_epochs, mode, scores_of)  # fmt: skip
    if race.winner is None:
        return Answer(None, None, steps[0], "every grid LR diverged in the race")
    return Answer(race.winner, by_lr[race.winner], steps[0] + full)


def _first_epochs(trial: TrialResult, epochs: int) -> TrialResult:
    """The trial as a race trial of ``epochs`` epochs would have recorded it."""
    cut = TrialResult(trial.name, "race", trial.lr, trial.seed,
                      train_loss=trial.train_loss[:epochs], val_loss=trial.val_loss[:epochs])  # fmt: skip
    # Diverged within those epochs: its history stops before them.
    cut.diverged = trial.diverged and len(trial.train_loss) < epochs
    return cut


def final_value(trial: TrialResult) -> float | None:
    """What the study compares: the metric over the full budget, smoothed.

    An EMA (weight 0.5 on the last epoch), as the race scores: the last epoch alone swings by a
    median 8% from the one before. None when the trial diverged.
    """
    if final_loss(trial) is None:
        return None
    return smoothed(trial.val_loss if trial.val_loss else trial.train_loss, ORACLE_SMOOTHING)


def _best(trials: list[TrialResult], mode: str) -> TrialResult | None:
    finals = [(f, t) for t in trials if (f := final_value(t)) is not None]
    if not finals:
        return None
    key = Measure(mode).key
    return min(finals, key=lambda ft: key(ft[0]))[1]


def regret(value: float | None, best: float, diverged: bool, mode: str) -> float | None:
    """How far ``value`` is from the grid's ``best``.

    ``value/best`` for a loss, the ratio of gaps to the bound for a bounded metric
    (:class:`~lr_lab.analysis.measure.Measure`); inf when the trial diverged, None without a
    value.
    """
    if diverged:
        return math.inf
    if value is None:
        return None
    ratio, kind = Measure.of(mode, [value, best]).versus(value, best)
    return ratio if kind == "x" else (1.0 if value == best else math.inf)
