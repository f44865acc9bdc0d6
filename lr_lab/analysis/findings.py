"""What lr_lab's rule study found: which finder rule to trust (README, "Which rule to trust").

Measured by ``python scripts/study.py`` (``configs/study.yaml``) on 2026-11-30 with lr_lab 0.2.0,
Lightning 2.6.6 and torch 2.13.0: 73 problems x 3 seeds; ``docs/study.md`` has every table. Run
the study again and update these numbers when the rules or Lightning change.
"""

from __future__ import annotations

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
