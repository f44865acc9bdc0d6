"""Plain result records, and the one reader and writer of ``results.json``.

Records are dataclasses of numbers, strings and lists, so they pickle (for worker processes) and
turn into JSON as they are. ``results.json`` is always replaced atomically, and read back with
every field checked against its type: a damaged or hand-edited file is refused with one line
naming the field, never half-used.
"""

from __future__ import annotations

import json
import math
import statistics
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from lr_lab.analysis.records import BaselineResult, FinderResult, SearchResult, TrialResult
from lr_lab.atomic import atomic_write
from lr_lab.errors import ResultsError

RESULTS_FILE = "results.json"
STATUSES = ("running", "interrupted", "failed", "complete")


@dataclass
class RunResults:
    """Everything one experiment measured; serialised as ``results.json``."""

    status: str = "running"  # one of STATUSES
    lr_lab_version: str = ""
    lightning_version: str = ""
    torch_version: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config it started with
    seeds: list[int] = field(default_factory=list)
    init_sha256: dict[str, str] = field(default_factory=dict)  # seed -> weights hash
    init_source: str = ""  # the --init checkpoint the run started from, if any
    csv_sha256: str = ""  # the data.csv_path file the run read, if any
    metric: str = "val_loss"  # which final value ranks the trials
    metric_mode: str = "min"  # "min" (a loss) or "max" (an accuracy): which way is better
    # Torch intra-op threads of every trial and finder, decided when the run started: a resume
    # on another machine or CPU share trains on the same count (bit for bit only then).
    threads: int | None = None
    trials: list[TrialResult] = field(default_factory=list)
    finders: list[FinderResult] = field(default_factory=list)
    searches: list[SearchResult] = field(default_factory=list)  # one per seed, once finished
    baselines: list[BaselineResult] = field(default_factory=list)  # per seed and peer, once done
    pending: list[str] = field(default_factory=list)  # "seed0/lr=0.01", "seed0/finder" still to run
    report: dict[str, str] = field(default_factory=dict)  # report file -> sha256
    error: str = ""  # why the run failed, if it did
    # What came from Python rather than from a class path: {"model": "instance"}; a resume
    # needs the same objects again.
    objects: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    comparison: Any = None  # a comparison.Comparison once ranked (recomputed on resume)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; non-finite floats become ``null`` (JSON has no NaN)."""
        data = asdict(replace(self, comparison=None))
        data["comparison"] = self.comparison.to_json() if self.comparison is not None else None
        for trial, record in zip(self.trials, data["trials"]):
            record["final_loss"] = trial.final_loss
        # The first seed's finder, flat, for the common one-seed case.
        data["finder"] = _finder_summary(self) if self.finders else None
        return _json_safe(data)

    @classmethod
    def from_json(cls, data: Any, where: str = RESULTS_FILE) -> RunResults:
        """Rebuild the records from a ``results.json`` dict, checking every field's type.

        Raises:
            ResultsError: A missing, mistyped or unknown field, named.
        """
        record = _build(cls, data, where, derived=("finder", "comparison"))
        if record.status not in STATUSES:
            raise ResultsError(f"{where}: status = {record.status!r}: expected one of {STATUSES}")
        return record


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
        "curve": first.curve,
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


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` if it is of type ``tp`` (a JSON reading of it), else raise naming ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ResultsError(f"{where}: expected a list, got {type(value).__name__}")
        if is_dataclass(args[0]):
            return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultsError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {k: _check_value(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if value is None:  # JSON null stands for a non-finite float
            return math.nan
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise ResultsError(f"{where} = {value!r}: expected {getattr(tp, '__name__', tp)}")
    return float(value) if tp is float else value


def _build(cls: type, data: Any, where: str, derived: tuple[str, ...] = ()) -> Any:
    """An instance of dataclass ``cls`` from JSON ``data``, every field checked."""
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known - set(derived) - {"final_loss"})
    if unknown:
        raise ResultsError(f"{where}: unknown field {unknown[0]!r}")
    values = {}
    for f in fields(cls):
        if f.name in derived or f.name not in data:
            if f.name not in derived and _required(f):
                raise ResultsError(f"{where}: missing field {f.name!r}")
            continue
        values[f.name] = _check_value(data[f.name], hints[f.name], f"{where}.{f.name}")
    return cls(**values)


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def write_results(run_dir: Path, results: RunResults) -> Path:
    """Atomically replace ``run_dir/results.json`` with ``results``."""
    text = json.dumps(results.to_json(), indent=2, allow_nan=False) + "\n"
    return atomic_write(Path(run_dir) / RESULTS_FILE, text)


def read_results(run_dir: Path) -> RunResults:
    """Read ``run_dir/results.json`` back into records.

    Raises:
        ResultsError: The file is unreadable, not JSON, or not a valid record (named).
    """
    path = Path(run_dir) / RESULTS_FILE
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"{path}: cannot read ({getattr(err, 'strerror', None) or err})"
        ) from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        msg = getattr(err, "msg", "nested too deeply")
        raise ResultsError(f"{path}: not valid JSON ({msg})") from None
    return RunResults.from_json(data, str(path))
