"""Plain result records and the one writer of ``results.json``.

Records are dataclasses of numbers, strings and lists, so they pickle (for worker processes) and
turn into JSON as they are. ``results.json`` is always replaced atomically: written to a temporary
file in the same folder, flushed to disk, then renamed over the old one.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"


@dataclass
class TrialResult:
    """What one training run at one learning rate measured."""

    name: str
    role: str  # "fixed" or "finder_check"
    lr: float
    seed: int
    rules: list[str] = field(default_factory=list)  # finder rules that suggested this LR
    train_loss: list[float] = field(default_factory=list)  # per epoch, sample-weighted mean
    val_loss: list[float] = field(default_factory=list)  # per epoch; empty without validation
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    diverged: bool = False
    diverged_step: int | None = None  # global step (0-based) whose loss was non-finite/exploded
    first_step_loss: float | None = None
    first_batch_sha256: str = ""
    init_sha256: str = ""  # hash of the weights this trial actually started from
    steps: int = 0
    wall_s: float = 0.0
    step_us: float = 0.0  # wall time per optimizer step, microseconds
    verdict: str = ""
    tb_run: str = ""  # TensorBoard run folder, relative to the run folder

    @property
    def final_loss(self) -> float | None:
        """The loss trials are ranked by: validation if there is validation, else training."""
        return self.final_val_loss if self.val_loss else self.final_train_loss


@dataclass
class FinderResult:
    """One run of Lightning's LR finder and the suggestions read off its curve."""

    seed: int
    lr: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # Lightning's smoothed loss per step
    suggestion: float | None = None  # what Lightning's suggestion() returned
    suggestion_note: str = ""  # why there is no suggestion, when there is none
    rules: dict[str, float | None] = field(default_factory=dict)
    rule_notes: dict[str, str] = field(default_factory=dict)  # why a rule could not decide
    num_training: int = 0
    stopped_early: bool = False
    nonfinite_points: int = 0
    lightning_version: str = ""
    init_sha256: str = ""
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


@dataclass
class RunResults:
    """Everything one experiment measured; serialised as ``results.json``."""

    status: str = "running"  # "running", "complete" or "interrupted"
    lr_lab_version: str = ""
    lightning_version: str = ""
    torch_version: str = ""
    seeds: list[int] = field(default_factory=list)
    init_sha256: dict[str, str] = field(default_factory=dict)  # seed -> weights hash
    init_source: str = ""  # the --init checkpoint the run started from, if any
    csv_sha256: str = ""  # the data.csv_path file the run read, if any
    metric: str = "val_loss"  # which final loss ranks the trials
    trials: list[TrialResult] = field(default_factory=list)
    finders: list[FinderResult] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # "seed/trial" still to run
    comparison: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite floats become ``null`` (JSON has no NaN)."""
        data = asdict(self)
        for trial, record in zip(self.trials, data["trials"]):
            record["final_loss"] = trial.final_loss
        # The first seed's finder, flat, for the common one-seed case.
        data["finder"] = _finder_summary(self) if self.finders else None
        return _json_safe(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResults:
        """Rebuild the records from a ``results.json`` dict (for resume)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["trials"] = [
            TrialResult(**{k: v for k, v in t.items() if k in TrialResult.__dataclass_fields__})
            for t in data.get("trials", [])
        ]
        fields["finders"] = [FinderResult(**f) for f in data.get("finders", [])]
        return cls(**fields)


def _finder_summary(results: RunResults) -> dict[str, Any]:
    first = results.finders[0]
    rules: dict[str, float | None] = {}
    for name in first.rules:
        values = [v for f in results.finders if (v := f.rules.get(name)) is not None]
        rules[name] = statistics.median_low(values) if values else None
    return {
        "suggestion": first.suggestion,
        "lr": first.lr,
        "loss": first.loss,
        "rules": rules,  # rule -> suggested LR (the lower median over seeds)
        "lightning_version": first.lightning_version,
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_results(run_dir: Path, results: RunResults) -> Path:
    """Atomically replace ``run_dir/results.json`` with ``results``.

    Args:
        run_dir: The run folder.
        results: The records to write.

    Returns:
        The path written.
    """
    path = run_dir / RESULTS_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".results-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(results.to_json(), fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(run_dir: Path) -> RunResults:
    """Read ``run_dir/results.json`` back into records."""
    with (run_dir / RESULTS_FILE).open(encoding="utf-8") as fh:
        return RunResults.from_json(json.load(fh))
