"""The recommendation: which learning rate lr_lab tells you to use, and how much to trust it."""

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


@dataclass
class Recommendation:
    """An LR to use and where it came from: the study's most trusted rule, or the best observed."""

    lr: float
    lr_min: float
    lr_max: float
    loss: float
    source: str  # "grid" or "rule valley+steep_log"
    rank: int | None = None
    study_hit_rate: float | None = None  # the trusted rule's hit rate in lr_lab's study


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
