"""What a run measures, record by record: each trial, each finder, each seed's search.

Plain dataclasses of numbers, strings and lists: they pickle (for worker processes) and turn
into JSON as they are (:mod:`lr_lab.analysis.results` reads and writes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

INIT_FILE = "init.ckpt"  # in each seed's folder


def seed_dir(run_dir: Path, seed: int) -> Path:
    """The folder of one seed: its ``init.ckpt`` and one TensorBoard run per trial."""
    return run_dir / f"seed{seed}"


@dataclass
class TrialResult:
    """What one training run at one learning rate measured."""

    name: str
    role: str  # "fixed", "finder_check", "race", "search", "baseline" or "optuna"
    lr: float
    seed: int
    rules: list[str] = field(default_factory=list)  # finder rules that suggested this LR
    rung: int | None = None  # a race trial's rung
    stop_epochs: int | None = None  # a race trial's budget: stopped after this many epochs
    # Per epoch, sample-weighted mean (the last one partial when trials.max_steps cut it, as
    # Lightning's own on_epoch logging has it); an epoch a divergence cut short is left out.
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)  # the metric per epoch; [] without val
    # Every metric the module logged in validation (self.log), per epoch: {"val_acc": [...]}.
    metrics: dict[str, list[float]] = field(default_factory=dict)
    final_train_loss: float | None = None  # None when diverged
    final_val_loss: float | None = None
    diverged: bool = False
    diverged_step: int | None = None  # optimizer step (0-based) whose loss was non-finite/exploded
    diverged_reason: str = ""
    first_step_loss: float | None = None
    first_batch_sha256: str = ""
    init_sha256: str = ""  # hash of the weights this trial actually started from
    steps: int = 0  # optimizer steps taken
    global_step: int = 0  # Lightning's trainer.global_step at the end of the fit
    batched: bool = False
    threads: int = 1  # torch intra-op threads it trained on
    wall_s: float = 0.0
    step_us: float = 0.0  # wall time per optimizer step, microseconds
    verdict: str = ""
    tb_run: str = ""  # TensorBoard run folder, relative to the run folder
    optimizer: str = ""  # a baseline's LR-free optimizer ("prodigy"), in place of the module's
    note: str = ""  # what the table should say about it ("the module's scheduler dropped")

    @property
    def key(self) -> str:
        """``seed0/lr=0.01``: the trial's id within the run."""
        return f"seed{self.seed}/{self.name}"

    @property
    def final_loss(self) -> float | None:
        """The loss trials are ranked by: the validation metric if there is one, else training."""
        return self.final_val_loss if self.val_loss else self.final_train_loss


@dataclass
class FinderResult:
    """One run of Lightning's LR finder and the suggestions read off its curve."""

    seed: int
    lr: list[float] = field(default_factory=list)
    loss: list[float] = field(
        default_factory=list
    )  # Lightning's smoothed loss, as Lightning has it
    raw_loss: list[float] = field(default_factory=list)  # the loss of each step, unsmoothed
    corrected_loss: list[float] = field(default_factory=list)  # the same average, bias corrected
    curve: str = "lightning"  # which curve the lab's rules read
    suggestion: float | None = None  # what Lightning's suggestion() returned
    suggestion_note: str = ""  # why there is no suggestion, when there is none
    rules: dict[str, float | None] = field(default_factory=dict)
    rule_notes: dict[str, str] = field(default_factory=dict)  # why a rule could not decide
    num_training: int = 0
    stopped_early: bool = False
    nonfinite_points: int = 0
    lightning_version: str = ""
    init_sha256: str = ""
    first_batch_sha256: str = ""
    threads: int = 1
    wall_s: float = 0.0

    def flags(self) -> list[str]:
        """What the user should know about the curve: cut short, or holding non-finite points."""
        flags = []
        if self.stopped_early:
            flags.append(
                f"stopped early after {len(self.loss)} of {self.num_training} steps (loss exploded)"
            )
        if self.nonfinite_points:
            flags.append(f"{self.nonfinite_points} non-finite points skipped by the rules")
        return flags

    def rule_curve(self) -> list[float]:
        """The curve the lab's rules read (``finder.curve``)."""
        return self.corrected_loss if self.curve == "corrected" else self.loss


def full_trial_at(trials: list[TrialResult], lr: float, rule: str = "") -> TrialResult | None:
    """The full-budget trial at ``lr`` a rule's row or the search's answer stands on, or None.

    The rule's own check first, then a grid trial, another check, a full-budget race trial; by
    name within a role, never by record order (a resumed run must choose the same); never a race
    trial cut at a rung.
    """
    full = [t for t in trials if t.stop_epochs is None and math.isclose(t.lr, lr)]
    order = {"fixed": 1, "finder_check": 2}
    return min(full, key=lambda t: (rule not in t.rules, order.get(t.role, 3), t.name),
               default=None)  # fmt: skip


@dataclass
class RungResult:
    """One rung of a seed's race: who ran, their scores, who went on."""

    epochs: int
    lrs: list[float] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)  # smoothed metric; None: diverged
    kept: list[float] = field(default_factory=list)  # the LRs that went on (last rung: the winner)
    extended: bool = False  # undecided (nothing had learned yet): all went on, for twice the epochs


@dataclass
class SearchResult:
    """One seed's search: the finder's trusted rules, the bracket, the race, the winner."""

    seed: int
    rules: dict[str, float | None] = field(default_factory=dict)  # the trusted rules' LRs
    anchor: float | None = None  # their geometric mean (None: the fallback bracket)
    fallback: str = ""  # why the coarse bracket stood in
    candidates: list[float] = field(default_factory=list)
    rungs: list[RungResult] = field(default_factory=list)
    lr: float | None = None  # the winner
    trial: str = ""  # its full-budget trial's key
    finder_steps: int = 0
    race_steps: int = 0

    @property
    def steps(self) -> int:
        """Every training step spent choosing the LR: the finder's and the race's."""
        return self.finder_steps + self.race_steps


@dataclass
class BaselineResult:
    """One seed's peer: an LR-free optimizer's trial, or Optuna's study and the LR it chose."""

    seed: int
    name: str  # "prodigy", ..., "optuna"
    trial: str = ""  # the key of the full-budget trial that is its answer ("": none finished)
    lr: float | None = None  # Optuna's best LR; an LR-free optimizer's nominal lr argument
    steps: int = 0  # every training step it spent (Optuna: all its trials, pruned ones too)
    trials: int = 1  # trials it trained
    budget: int = 0  # Optuna: the steps it was given (the search's, finder and winner included)
    note: str = ""  # why it has no answer, or what it changed ("the module's scheduler dropped")
