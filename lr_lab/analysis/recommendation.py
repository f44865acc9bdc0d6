"""The recommendation: which learning rate lr_lab tells you to use, and how much to trust it.

The search's winner (the finder's answer, raced and trained to the full budget) when the search
ran; else the rule the study trusts most among those a run read. Each comes with the hit rate
lr_lab's study measured for it, so the answer says how often such an answer was right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What lr_lab's study found (README, "Which approach to use"), measured on 2026-12-07 with
# lr_lab 0.3.0, Lightning 2.6.6, torch 2.13.0: 41 problems of five families x 3 seeds, each
# answer's EMA-smoothed final metric within 1.5x of a 13-LR oracle grid's best.
# The rules, most trusted first, with how often each hit. Without the search, a run's
# recommendation is the first of these it read and trained on every seed without divergence,
# among those that hit at least RECOMMEND_AT of the time: a rule that misses more often than it
# hits (valley, steep_log, Lightning's suggestion) is never recommended.
TRUSTED_RULES = {
    "minimum_div10@corrected": 69 / 123,
    "minimum_div10": 67 / 123,
    "valley": 60 / 123,
    "steep_log": 59 / 123,
    "steep_log@corrected": 55 / 123,
    "valley@corrected": 53 / 123,
    "lightning": 6 / 123,
    "lightning@corrected": 0.0,
}
STUDY_SIZE = 123
RECOMMEND_AT = 0.5
# The search's hit rate in the same study (101 of 123 problem-seeds, 95% interval 73-89% by a
# bootstrap over problems), on seeds its design never saw.
SEARCH_HIT_RATE: float | None = 101 / 123
SEARCH_STUDY_SIZE = 123
GRID_LRS = 13  # the reference grid the search's cost is a share of


@dataclass
class Recommendation:
    """An LR to use and where it came from: the study's most trusted rule, or the best observed."""

    lr: float
    lr_min: float
    lr_max: float
    loss: float
    source: str  # "search", "grid" or "rule valley+steep_log"
    rank: int | None = None
    study_hit_rate: float | None = None  # its hit rate in lr_lab's study
    search_steps: int | None = None  # every step spent choosing it: finders and races, all seeds
    grid_steps: int | None = None  # what a 13-LR grid of full trials costs on the same seeds


def trusted(rules: dict[str, Any]) -> Recommendation | None:
    """The study's most trusted rule among those this run read and trained on every seed.

    None when no rule the study found right at least half the time (``RECOMMEND_AT``) ran here.
    """
    for name, hit_rate in TRUSTED_RULES.items():
        row = rules.get(name) if hit_rate >= RECOMMEND_AT else None
        if row is not None and row.comparable and row.rank is not None:
            return Recommendation(row.lr, row.lr_min, row.lr_max, row.mean, f"rule {name}",
                                  row.rank, hit_rate)  # fmt: skip
    return None


def recommend(results: Any, rows: list[Any], rules: dict[str, Any]) -> Recommendation | None:
    """The search's winner where it ran on every seed; else :func:`trusted`."""
    search = next((r for r in rows if r.source == "search"), None)
    if search is None or not search.comparable or search.rank is None:
        return trusted(rules)
    steps = sum(s.steps for s in results.searches)
    keys = {t.key: t for t in results.trials}
    full = sum(keys[name].steps for name in search.trial_names)  # one full trial per seed
    return Recommendation(search.lr, search.lr_min, search.lr_max, search.mean, "search",
                          search.rank, SEARCH_HIT_RATE, steps, GRID_LRS * full)  # fmt: skip
