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
        threads: Torch intra-op threads to train on (the run's, see ``trainer.plan_threads``).
    """

    name: str
    lr: float
    seed: int
    role: str
    init_path: str
    log_dir: str
    config: ExperimentConfig
    rules: tuple[str, ...] = field(default=())
    threads: int = 1

    @property
    def key(self) -> str:
        """``seed0/lr=0.01``: the trial's id within the run (and its folder)."""
        return f"seed{self.seed}/{self.name}"


def trial_name(lr: float, order: int, rules: tuple[str, ...] = ()) -> str:
    """A TensorBoard run name that sorts by learning rate: ``020_lr=0.01``, ``025_lr=0.012_valley``.

    ``order`` (see :func:`lr_orders`) puts the runs in LR order in TensorBoard's run lists, which
    sort names as text (``lr=1e-05`` would come after ``lr=1``); the LR follows, readable.
    """
    return f"{order:03d}_lr={lr:.3g}" + (f"_{'+'.join(rules)}" if rules else "")


def lr_orders(grid: list[float], checks: list[float] = ()) -> tuple[list[int], list[int]]:
    """Sort keys for run names, in LR order.

    Grid LRs get 10, 20, 30... in LR order; each check LR gets the key of the grid LR just below
    it plus 1, 2, ... in LR order (0 plus ... below the whole grid). A grid trial's key depends on the grid alone, so it never changes when the finder's checks
    are added later (or on resume).
    """
    ranked = sorted(grid)
    grid_keys = [10 * (ranked.index(lr) + 1) for lr in grid]
    check_keys = []
    for lr in checks:
        base = 10 * sum(g < lr for g in ranked)
        same_gap = sorted(c for c in checks if 10 * sum(g < c for g in ranked) == base)
        check_keys.append(base + 1 + same_gap.index(lr))
    return grid_keys, check_keys
