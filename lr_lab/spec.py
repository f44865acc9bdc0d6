"""A trial, described: :class:`TrialSpec` is the one thing every executor hands a worker.

A spec is plain, picklable data (the config is a tree of dataclasses), so a trial runs the same
in this process, in a worker process or on a Ray node, and returns a plain
:class:`~lr_lab.results.TrialResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lr_lab.config import ExperimentConfig


@dataclass(frozen=True)
class TrialSpec:
    """A picklable description of one trial.

    Attributes:
        name: The trial's TensorBoard run name, unique within its seed.
        lr: The learning rate.
        seed: The seed of the data, the data order and the initial checkpoint.
        role: ``"fixed"`` (from the grid) or ``"finder_check"`` (verifying a suggestion).
        init_path: The seed's ``init.ckpt``.
        log_dir: The seed's folder; the trial's TensorBoard run is ``log_dir/name``.
        config: The whole experiment config.
        rules: The finder rules that suggested this LR (finder checks only).
    """

    name: str
    lr: float
    seed: int
    role: str
    init_path: str
    log_dir: str
    config: ExperimentConfig
    rules: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """``seed0/lr=0.01``: the trial's id within the run (and its folder)."""
        return f"seed{self.seed}/{self.name}"


def trial_name(lr: float, rules: tuple[str, ...] = ()) -> str:
    """A TensorBoard run name: ``lr=0.01`` for the grid, ``check_valley_lr=0.012`` for a rule's."""
    return f"check_{'+'.join(rules)}_lr={lr:.3g}" if rules else f"lr={lr:.3g}"
