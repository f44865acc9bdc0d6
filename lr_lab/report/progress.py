"""The progress lines a run prints as it goes: one per trial, one per finder."""

from __future__ import annotations

from lr_lab.analysis.records import BaselineResult, FinderResult, SearchResult, TrialResult


def describe_finder(finder: FinderResult) -> str:
    """One line: steps, time, each rule's LR, and any flags about the curve."""
    rules = ", ".join(
        f"{rule} {lr:.3g}" if lr else f"{rule} -" for rule, lr in finder.rules.items()
    )
    return "; ".join([f"{len(finder.lr)} steps in {finder.wall_s:.2f} s, {rules}", *finder.flags()])


def describe_search(search: SearchResult) -> str:
    """One line: the bracket, each rung's survivors, the winner, the steps it cost."""
    where = (f"around {search.anchor:.3g} (the trusted rules' geometric mean)" if search.anchor
             else f"coarse bracket ({search.fallback})")  # fmt: skip
    rungs = "; ".join(
        f"{rung_text(r.lrs, r.epochs)} -> "
        + (
            "undecided, all go on"
            if r.extended
            else ", ".join(f"{lr:.3g}" for lr in r.kept) or "none"
        )
        for r in search.rungs
    )
    won = f"LR {search.lr:.3g}" if search.lr else f"no winner ({search.fallback})"
    return f"{len(search.candidates)} candidates {where}; {rungs}; {won}, {search.steps} steps"


def epochs(n: int) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{n} epoch{'' if n == 1 else 's'}"


def rung_text(lrs: list[float], n_epochs: int) -> str:
    """``6 LRs x 1 epoch``."""
    return f"{len(lrs)} LR{'s' if len(lrs) != 1 else ''} x {epochs(n_epochs)}"


def describe_optuna(optuna: BaselineResult) -> str:
    """One line: Optuna's trials, its best full-budget LR, the steps it spent of its budget."""
    best = f"best LR {optuna.lr:.3g}" if optuna.lr else optuna.note
    return f"{optuna.trials} trials; {best}; {optuna.steps} of {optuna.budget} steps"


def trial_line(
    result: TrialResult, index: int, total: int | None, how: str, metric: str = "val_loss"
) -> str:
    """``[2/4] 020_lr=0.01   final loss 0.01827   0.08 s``: one finished trial.

    ``[2]`` without a total: of a number not known in advance (Optuna's).
    """
    width = len(str(total or index))
    count = f"{index:>{width}}/{total}" if total else f"{index:>{width}}"
    if result.diverged:
        outcome = f"diverged at step {result.diverged_step}"
    elif result.final_loss is None:
        outcome = "no epoch"
    else:
        name = metric if result.val_loss else "train loss"
        outcome = f"final {name.replace('_', ' ')} {result.final_loss:.4g}"
    note = {"batched": f" (batched, {result.step_us:.0f} us/trial-step)", "processes": " (worker)",
            "ray": " (ray)"}.get(how, "")  # fmt: skip
    if result.note:
        note += f" ({result.note})"
    return f"  [{count}] {result.name:<36} {outcome:<28} {result.wall_s:5.2f} s{note}"
