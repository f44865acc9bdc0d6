"""The peers a run can train beside its search: names, packages, nominal LRs (no torch here).

The optimizers are imported only when a baseline trains (:mod:`lr_lab.training.baselines`); this
registry lets the checks name a missing package before anything is written.
"""

from __future__ import annotations

import importlib.util

# name -> (module, class, what the optimizer's lr argument is at its documented default; 0.0:
# it has none)
OPTIMIZERS: dict[str, tuple[str, str, float]] = {
    "prodigy": ("prodigyopt", "Prodigy", 1.0),  # a multiplier of the step size it learns
    "dadapt_adam": ("dadaptation", "DAdaptAdam", 1.0),
    "dadapt_sgd": ("dadaptation", "DAdaptSGD", 1.0),
    "schedulefree_adamw": ("schedulefree", "AdamWScheduleFree", 0.0025),  # a real LR
    "dog": ("dog", "DoG", 1.0),
    "cocob": ("parameterfree", "COCOB", 0.0),  # no LR at all
}
OPTUNA = "optuna"
# module -> the pip package that installs it
PACKAGES = {"prodigyopt": "prodigyopt", "dadaptation": "dadaptation",
            "schedulefree": "schedulefree", "dog": "dog-optimizer",
            "parameterfree": "parameterfree", "optuna": "optuna"}  # fmt: skip


def missing(names: list[str]) -> list[str]:
    """One line per baseline whose package is not installed (checked before anything runs)."""
    lines = []
    for name in dict.fromkeys(names):
        module = OPTUNA if name == OPTUNA else OPTIMIZERS[name][0]
        if importlib.util.find_spec(module) is None:
            lines.append(
                f'baselines: {name} needs the {PACKAGES[module]} package: pip install -e ".[peers]"'
            )
    return lines
