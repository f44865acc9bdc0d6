"""What is left of a run, read from its folder: the forensics behind ``--resume``.

A run folder is the unit of truth. Before anything runs again, its records are checked against
the config it started with (an edited ``config.yaml`` is refused, naming the keys), against the
plan (a trial the plan does not contain is refused), and against the files on disk: a trial whose
TensorBoard run was deleted is trained again, a missing or damaged ``init.ckpt`` is made again
(and must hash to what the run recorded), a damaged report file is redrawn.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from lr_lab.analysis.comparison import compare
from lr_lab.analysis.records import INIT_FILE, TrialResult, seed_dir
from lr_lab.analysis.results import RunResults
from lr_lab.config.files import flat_keys
from lr_lab.config.schema import ExperimentConfig
from lr_lab.errors import InitStateError, UsageError
from lr_lab.experiment.plan import check_plan, plan_pending, rule_names
from lr_lab.report.files import damaged_report
from lr_lab.report.tensorboard import REPORT_EVENTS
from lr_lab.training.initial_state import read_initial_state, weights_sha256

# Where trials run is not part of the experiment: a resume may change these.
WHERE_KEYS = ("trials.executor", "trials.workers", "ray.address", "ray.cpus_per_trial",
              "ray.gpus_per_trial")  # fmt: skip


@dataclass
class Todo:
    """What a run still needs: training (trials, finders, checks) and report files."""

    training: bool
    report: list[str]

    @property
    def nothing(self) -> bool:
        """Whether the run is complete and intact."""
        return not self.training and not self.report


def config_changes(recorded: dict, current: dict) -> list[str]:
    """``key: old -> new`` for every key whose value differs (where trials run aside)."""
    old, new = flat_keys(recorded), flat_keys(current)
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and key not in WHERE_KEYS
    ]


def check_resume(run_dir: Path, cfg: ExperimentConfig, recorded: dict) -> None:
    """Refuse to resume a run whose ``config.yaml`` was edited since it started.

    Raises:
        UsageError: The config differs from the one recorded (naming up to five keys).
    """
    if recorded and (changes := config_changes(recorded, asdict(cfg))):
        raise UsageError(
            f"--resume {run_dir}: config.yaml differs from the config this run started with "
            f"({'; '.join(changes[:5])}); put it back, or start a new run"
        )


def check_objects(run_dir: Path, recorded: dict[str, str], given: dict[str, str]) -> None:
    """Refuse to resume a run started with a module or DataModule instance without it.

    A class or factory given from Python is found again by its recorded path (unless it lives in
    ``__main__``: its import then says so); an instance (a pretrained part, tensors made in a
    notebook) cannot be.

    Raises:
        UsageError: An instance the run started with is missing.
    """
    for section, kind in recorded.items():
        if kind == "instance" and section not in given:
            name = "datamodule" if section == "data" else section
            raise UsageError(
                f"{run_dir}: this run was started with a {name} object; finish it with "
                f"lr_lab.resume({str(run_dir)!r}, {name}=<the same object>)"
            )


def todo(cfg: ExperimentConfig, results: RunResults, run_dir: Path) -> Todo:
    """What is left of a run (a new run: everything).

    Raises:
        ResultsError: ``results.json`` holds a trial the plan does not contain.
    """
    check_plan(cfg, results)
    unsound = [
        t for t in results.trials if not t.diverged and not _finite(t.train_loss + t.val_loss)
    ]
    if unsound:  # an earlier lr_lab kept a non-finite metric without calling it divergence
        results.trials = [t for t in results.trials if t not in unsound]  # trained again
    if lost := _lost_curves(results, run_dir):  # trained again: the same numbers, and the curves
        results.trials = [t for t in results.trials if t not in lost]
    if (
        unsound
        or lost
        or results.status != "complete"
        or plan_pending(cfg, results)
        or not all(_init_intact(run_dir, seed, results) for seed in cfg.seed_list)
    ):
        return Todo(training=True, report=["all"])
    results.comparison = compare(results, rule_names(cfg))
    return Todo(training=False, report=damaged_report(results, run_dir))


def _finite(values: list[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def _lost_curves(results: RunResults, run_dir: Path) -> list[TrialResult]:
    """Trials whose TensorBoard run (their training curves) is gone from the run folder.

    A batched trial takes the rest of its stack with it: trained again together, the copies
    give the numbers they gave (a smaller stack might differ in the last bits).
    """
    lost = [
        t
        for t in results.trials
        if not [
            p
            for p in (run_dir / t.tb_run).glob("events.out.tfevents.*")
            if p.name != REPORT_EVENTS  # the report's events are the report's to redraw
        ]
    ]
    stacks = {(t.seed, t.role) for t in lost if t.batched}
    return [t for t in results.trials if t in lost or (t.batched and (t.seed, t.role) in stacks)]


def _init_intact(run_dir: Path, seed: int, results: RunResults) -> bool:
    """Whether ``seedN/init.ckpt`` is there and holds the weights the run recorded.

    If not, the training pass makes it again (and proves it the same) or says it changed.
    """
    try:
        state = read_initial_state(seed_dir(run_dir, seed) / INIT_FILE)["state_dict"]
    except InitStateError:
        return False
    return weights_sha256(state) == results.init_sha256.get(str(seed))
