"""The report's TensorBoard part: the summary run, the finder curves, each trial's HParams row.

Everything here is written from the finished :class:`~lr_lab.results.RunResults` after the trials
(which write only their own loss curves), so it always agrees with ``results.json``, and a
``--resume`` can write it again. Each event file is written to a temporary file and renamed into
place under a fixed name, so it is replaced whole, never appended to or left half-written; in the
calling thread (:class:`~lr_lab.events.EventFile`), so a full disk is one error naming the file.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from torch.utils.tensorboard.summary import hparams

from lr_lab.analysis.records import FinderResult, TrialResult, seed_dir
from lr_lab.analysis.results import RunResults
from lr_lab.atomic import atomic_file
from lr_lab.config.schema import FINDER_RUN
from lr_lab.report.progress import epochs
from lr_lab.report.table import answer, fmt, markdown_tables
from lr_lab.training.events import EventFile

SUMMARY_RUN = "_summary"  # sorts before seed0/...: the first run every dashboard lists
REPORT_EVENTS = "events.out.tfevents.0000000000.lr_lab_report"
HPARAM_METRICS = ("trial/diverged", "trial/final_loss", "trial/rank", "trial/ratio_to_best_fixed")
SCRATCH_PREFIX = ".report-"  # where an earlier lr_lab wrote these files; removed if left


def write_events(run: Path, fill: Callable[[EventFile], None]) -> Path:
    """Write one event file with ``fill(writer)``, atomically, as ``run/REPORT_EVENTS``.

    Raises:
        OSError: The file cannot be written (a full disk); the error names it.
    """
    run.mkdir(parents=True, exist_ok=True)
    with atomic_file(run / REPORT_EVENTS) as fh:
        fill(EventFile(fh))
    return run / REPORT_EVENTS


def summary_links(base: str = "http://localhost:6006") -> dict[str, str]:
    """Direct links into TensorBoard (``--logdir`` the run folder): the answer, pictures, curves.

    The legacy Text and Images dashboards tick no run when a run folder has more than 40, so the
    links tick the summary run themselves (``runSelectionState``: base64 of ``{run: true}``,
    checked in a browser with TensorBoard 2.21 by ``scripts/tb_screenshots.py``).
    """
    state = base64.b64encode(json.dumps({SUMMARY_RUN: True}, separators=(",", ":")).encode())
    selection = "&runSelectionState=" + urllib.parse.quote(state.decode(), safe="")
    return {
        "the answer and the table": f"{base}/#text{selection}",
        "the pictures": f"{base}/#images{selection}",
        "loss curves, all trials": f"{base}/?tagFilter=%5Eloss%2F#timeseries",
    }


def clean_scratch(run_dir: Path) -> None:
    """Remove scratch folders a killed report of an earlier lr_lab left behind."""
    for stale in run_dir.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def finder_step(lr: float) -> int:
    """The x of a finder point in TensorBoard: ``round(1000 * log10(lr))``.

    So the step axis reads as the learning rate (-2000 is 1e-2) and the curves are plotted
    against it, not against the finder's step.
    """
    return round(1000 * math.log10(lr))


def _finder_events(finder: FinderResult) -> Callable[[EventFile], None]:
    def fill(writer: EventFile) -> None:
        curves = {
            "lr_finder/loss_lightning": finder.loss,
            "lr_finder/loss_corrected": finder.corrected_loss,
            "lr_finder/loss_raw": finder.raw_loss,
        }
        step = None
        for i, lr in enumerate(finder.lr):
            # Strictly increasing, even where two LRs are within 0.001 decade (dense sweeps).
            step = finder_step(lr) if step is None else max(step + 1, finder_step(lr))
            writer.add_scalar("lr_finder/lr", lr, step)
            for tag, values in curves.items():
                if i < len(values) and math.isfinite(values[i]):
                    writer.add_scalar(tag, values[i], step)

    return fill


def _trial_rank(results: RunResults) -> dict[str, tuple[int | None, float | None]]:
    """Each trial's (rank, ratio to the best fixed loss), from the row that holds it."""
    out: dict[str, tuple[int | None, float | None]] = {}
    for row in results.comparison.rows:
        for name in row.trial_names:
            if name not in out or out[name][0] is None:
                out[name] = (row.rank, row.ratio_to_best_fixed)
    return out


def trial_source(trial: TrialResult) -> str:
    """Where a trial's LR came from, as the table says it: grid, rule X, race rung N, search."""
    if trial.role == "finder_check":
        return "rule " + "+".join(trial.rules)
    if trial.role == "race":
        budget = epochs(trial.stop_epochs) if trial.stop_epochs else "the full budget"
        return f"race rung {trial.rung} ({budget})"
    if trial.role == "baseline":
        return f"{trial.optimizer} (LR-free)"
    if trial.role == "optuna":
        return "optuna" + (f" ({trial.note})" if trial.note else "")
    return "search" if trial.role == "search" else "grid"


def _hparams_events(results: RunResults, trial: TrialResult, experiment: str, rank: tuple):
    def fill(writer: EventFile) -> None:
        # What identifies a trial; what all trials share is in the summary's config text.
        params = {
            # Five, as the table shows by default; "from" as in the printed table. An LR-free
            # optimizer has no LR (COCOB's would be 0, and turn the LR axis's log scale off).
            **({} if trial.role == "baseline" else {"lr": trial.lr}),
            "from": trial_source(trial),
            "seed": str(trial.seed),  # a string: TensorBoard shows numbers as 0.0000
            "verdict": trial.verdict,
            "experiment": experiment,
        }
        metrics = {"trial/diverged": float(trial.diverged)}  # absent values stay absent
        if trial.final_loss is not None and math.isfinite(trial.final_loss):
            metrics["trial/final_loss"] = trial.final_loss
        if rank[0] is not None:
            metrics["trial/rank"] = float(rank[0])
        if rank[1] is not None and math.isfinite(rank[1]):
            metrics["trial/ratio_to_best_fixed"] = rank[1]
        # Every trial declares all the metrics: TensorBoard takes the columns from one trial's
        # declaration, and a diverged trial's (diverged only) would hide the others' values.
        for summary in hparams(params, dict.fromkeys(HPARAM_METRICS, 0.0)):
            writer.add_summary(summary)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, 0)

    return fill


def config_text(results: RunResults) -> str:
    """The settings every trial shares, as Markdown (HParams shows only what differs)."""
    from lr_lab.config.files import flat_keys

    lines = [f"- `{key}`: {value}" for key, value in flat_keys(results.config).items()]
    versions = (
        f"lr_lab {results.lr_lab_version}, Lightning {results.lightning_version}, "
        f"torch {results.torch_version}"
    )
    return "\n".join(["Every trial of this run shares these settings:", "", *lines, "", versions])


def write_tensorboard(results: RunResults, run_dir: Path, pngs: list[Path]) -> list[Path]:
    """The summary run, each seed's finder run and each trial's HParams; the files written."""
    from matplotlib.image import imread

    written = []

    def summary(writer: EventFile) -> None:
        # Tags in the order the Text dashboard lists them: the answer, the table, the rest.
        writer.add_text("answer", answer(results))
        for page, table in markdown_tables(results).items():
            writer.add_text(f"ranking/{page}", table)
        writer.add_text("settings", config_text(results))
        for finder in results.finders:
            lines = [
                f"- **{rule}**: {fmt(lr, 3)}"
                + (f" ({finder.rule_notes[rule]})" if rule in finder.rule_notes else "")
                for rule, lr in finder.rules.items()
            ]
            lines += [f"- note: {flag}" for flag in finder.flags()]
            writer.add_text(f"suggestions/seed{finder.seed}", "\n".join(lines))
        for png in pngs:
            writer.add_image(f"report/{png.stem}", imread(png)[..., :3], dataformats="HWC")

    written.append(write_events(run_dir / SUMMARY_RUN, summary))
    for finder in results.finders:
        run = seed_dir(run_dir, finder.seed) / FINDER_RUN
        written.append(write_events(run, _finder_events(finder)))
    ranks = _trial_rank(results)
    for trial in results.trials:
        rank = ranks.get(trial.key, (None, None))
        fill = _hparams_events(results, trial, run_dir.name, rank)
        written.append(write_events(run_dir / trial.tb_run, fill))
    return written
