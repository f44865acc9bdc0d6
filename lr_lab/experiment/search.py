"""The search in a run: per seed, finder -> candidates -> the race's rungs -> the winner.

All of them are ordinary trials (each its own TensorBoard run and record, resumable).

A pure replay of the records decides what comes next (:func:`next_trials`): the candidates from
the finder's trusted rules, each rung's trials, their scores, who goes on, the winner and its
full-budget trial (a grid or check trial at the same LR is read instead of training it again).
So a resumed run continues the race where it stopped, and a record the replay does not reach (a
hand-edited score that would have promoted another LR) is refused by the plan.
"""

from __future__ import annotations

from lr_lab.analysis.measure import Measure
from lr_lab.analysis.records import FinderResult, SearchResult, TrialResult, full_trial_at
from lr_lab.config.schema import CORRECTED, ExperimentConfig
from lr_lab.experiment.trials import Planned, trial_name
from lr_lab.finder.rules import apply_rules
from lr_lab.search.candidates import candidates
from lr_lab.search.race import run_race, smoothed

# The search's anchor reads these rules (docs/search.md: other anchors did worse).
TRUSTED = ("valley", "minimum_div10")
SEARCH = "search"  # a seed's pending entry while its race is not planned to the end


def suggestions(finder: FinderResult) -> dict[str, float | None]:
    """The trusted rules on both finder curves (Lightning's and the bias-corrected one)."""
    out: dict[str, float | None] = {}
    for suffix, curve in (("", finder.loss), (CORRECTED, finder.corrected_loss)):
        read = apply_rules(TRUSTED, finder.lr, curve, None)
        out |= {f"{rule}{suffix}": s.lr for rule, s in read.items()}
    return out


def _history(trial: TrialResult) -> list[float]:
    return list(trial.val_loss if trial.val_loss else trial.train_loss)


def score(trial: TrialResult, how: str, mode: str) -> float | None:
    """A race trial's smoothed metric (None: diverged or no epoch), in the metric's units.

    Without validation the training loss stands in: lower is better then.
    """
    if trial.diverged:
        return None
    measure = Measure(mode if trial.val_loss else "min")
    keyed = smoothed([measure.key(v) for v in _history(trial)], how)
    return None if keyed is None else measure.key(keyed)  # key is its own inverse


def next_trials(
    cfg: ExperimentConfig, finder: FinderResult, trials: list[TrialResult], mode: str
) -> tuple[list[Planned], SearchResult]:
    """The search's next step on the finder's seed, and its record so far.

    The step is all of a rung's trials, or the winner's full trial, or [] when the search is done.

    Args:
        cfg: The run's config (``search``, ``trials.max_epochs``).
        finder: The seed's finder.
        trials: The seed's finished trials.
        mode: The metric's direction (``min``/``max``).
    """
    s, seed, epochs = cfg.search, finder.seed, cfg.trials.max_epochs
    rules = suggestions(finder)
    found = candidates(rules, s.below, s.above, s.spacing, (finder.lr[0], finder.lr[-1])
                       if finder.lr else None)  # fmt: skip
    record = SearchResult(seed, rules, found.anchor, found.fallback, list(found.lrs),
                          finder_steps=len(finder.lr))  # fmt: skip
    done = {t.key: t for t in trials}
    mode = mode if any(t.val_loss for t in trials) else "min"  # no validation: the loss

    def rung(lrs: list[float], rung_epochs: int, index: int) -> list[Planned]:
        cut = rung_epochs if rung_epochs < epochs else None  # a full-budget rung is a full trial
        return [Planned(trial_name(lr, f"race{index}"), lr, seed, "race", rung=index, epochs=cut)
                for lr in lrs]  # fmt: skip

    def scores_of(lrs: list[float], rung_epochs: int, index: int) -> list[float | None] | None:
        planned = rung(lrs, rung_epochs, index)
        if any(p.key not in done for p in planned):
            return None
        ran = [done[p.key] for p in planned]
        record.race_steps += sum(t.steps for t in ran)
        return [score(t, s.smoothing, mode) for t in ran]

    race = run_race(found.lrs, s.first_epochs, s.eta, s.rungs, s.extend, epochs, mode, scores_of)
    record.rungs = race.rungs
    if race.next is not None:
        return rung(*race.next, len(race.rungs)), record
    if race.winner is None:
        record.fallback = record.fallback or race.failed
        return [], record
    record.lr = race.winner
    if full := full_trial_at(trials, record.lr):  # a grid, check or full-budget race trial
        record.trial = full.key
        return [], record
    final = Planned(trial_name(record.lr, SEARCH), record.lr, seed, SEARCH)
    if final.key in done:
        record.trial = final.key
        return [], record
    return [final], record


def planned_keys(
    cfg: ExperimentConfig, finder: FinderResult, trials: list[TrialResult], mode: str
) -> dict[str, Planned]:
    """Every search trial the records reach, by key (what the plan accepts of a seed)."""
    reached: dict[str, Planned] = {}
    done = [t for t in trials if t.role not in ("race", SEARCH)]
    rest = {t.key: t for t in trials if t.role in ("race", SEARCH)}
    for _ in range(64):  # a race has a few rungs; the bound keeps a damaged record finite
        step, _ = next_trials(cfg, finder, done, mode)
        new = [p for p in step if p.key not in reached]
        if not new:
            break
        reached |= {p.key: p for p in step}
        found = [rest[p.key] for p in new if p.key in rest]
        if len(found) < len(new):
            break
        done += found
    return reached
