"""The recommendation: which learning rate lr_lab tells you to use, and how much to trust it.

The search's winner (the finder's answer, raced and trained to the full budget) when the search
ran; else the rule the study trusts most among those a run read. Each comes with the hit rate
lr_lab's study measured for it, so the answer says how often such an answer was right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What lr_lab's rule study found (README, "Which rule to trust"), measured on 2026-11-30 with
# lr_lab 0.2.0, Lightning 2.6.6, torch 2.13.0: 73 problems x 3 seeds.
# The rules, most trusted first, with how often each landed within 1.5x of the best grid LR's
# loss. A run's recommendation is the first of these it read and trained on every seed without
# divergence, among those that hit at least RECOMMEND_AT of the time: a rule that misses more
# often than it hits (steep_log, Lightning's suggestion) is never recommended.
TRUSTED_RULES = {
    "minimum_div10@corrected": 0.60,
    "valley": 0.59,
    "minimum_div10": 0.57,
    "valley@corrected": 0.52,
    "steep_log": 0.44,
    "steep_log@corrected": 0.36,
    "lightning": 0.0,
    "lightning@corrected": 0.0,
}
STUDY_SIZE = 219
RECOMMEND_AT = 0.5
# The search's hit rate in the study (README, "The search"): within 1.5x of the best 13-LR
# grid LR's loss, over SEARCH_STUDY_SIZE problem-seeds.
SEARCH_HIT_RATE: float | None = None
SEARCH_STUDY_SIZE = 0
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
