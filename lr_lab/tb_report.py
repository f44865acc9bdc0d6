"""The report's TensorBoard part: the summary run, the finder curves, each trial's HParams row.

Everything here is written from the finished :class:`~lr_lab.results.RunResults` after the trials
(which write only their own loss curves), so it always agrees with ``results.json``, and a
``--resume`` can write it again. Each event file is written in a scratch folder and renamed into
place under a fixed name, so it is replaced whole, never appended to or left half-written.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from lr_lab.results import RunResults, TrialResult
from lr_lab.table import fmt, markdown_report

SUMMARY_RUN = "_summary"  # sorts before seed0/...: the first run every dashboard lists
FINDER_RUN = "finder"
REPORT_EVENTS = "events.out.tfevents.0000000000.lr_lab_report"
SCRATCH_PREFIX = ".report-"


def write_events(run_dir: Path, run: Path, fill: Callable[[SummaryWriter], None]) -> Path:
    """Write one event file with ``fill(writer)`` and rename it to ``run/REPORT_EVENTS``."""
    run.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=run_dir))
    try:
        writer = SummaryWriter(str(scratch))
        try:
            fill(writer)
        finally:
            writer.close()
        (written,) = scratch.glob("events.out.tfevents.*")
        with open(written, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(written, run / REPORT_EVENTS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return run / REPORT_EVENTS


def clean_scratch(run_dir: Path) -> None:
    """Remove scratch folders a killed report left behind."""
    for stale in run_dir.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _finder_events(results: RunResults, seed_dir: Path) -> Callable[[SummaryWriter], None]:
    finder = next(f for f in results.finders if f"seed{f.seed}" == seed_dir.name)

    def fill(writer: SummaryWriter) -> None:
        curves = {
            "finder/loss_lightning": finder.loss,
            "finder/loss_corrected": finder.corrected_loss,
            "finder/loss_raw": finder.raw_loss,
        }
        for step, lr in enumerate(finder.lr):
            writer.add_scalar("finder/lr", lr, step)
            writer.add_scalar("finder/log10_lr", math.log10(lr), step)
            for tag, values in curves.items():
                if step < len(values) and math.isfinite(values[step]):
                    writer.add_scalar(tag, values[step], step)

    return fill


def _trial_rank(results: RunResults) -> dict[str, tuple[int | None, float | None]]:
    """Each trial's (rank, ratio to the best fixed loss), from the row that holds it."""
    out: dict[str, tuple[int | None, float | None]] = {}
    for row in results.comparison.rows:
        for name in row.trial_names:
            if name not in out or out[name][0] is None:
                out[name] = (row.rank, row.ratio_to_best_fixed)
    return out


def _hparams_events(results: RunResults, trial: TrialResult, experiment: str, rank: tuple):
    def fill(writer: SummaryWriter) -> None:
        params = {
            "lr": trial.lr,
            "role": trial.role,
            "rule": "+".join(trial.rules) or "-",
            "seed": str(trial.seed),  # a string: TensorBoard shows numbers as 0.0000
            "experiment": experiment,
        }
        metrics = {"hparams/diverged": float(trial.diverged)}
        if trial.final_loss is not None and math.isfinite(trial.final_loss):
            metrics["hparams/final_loss"] = trial.final_loss
        if rank[0] is not None:
            metrics["hparams/rank"] = float(rank[0])
        if rank[1] is not None and math.isfinite(rank[1]):
            metrics["hparams/ratio_to_best_fixed"] = rank[1]
        for summary in hparams(params, metrics):
            writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, 0)
        reason = f": {trial.diverged_reason}" if trial.diverged else ""
        writer.add_text(
            "verdict", f"**{trial.verdict}**{reason} (lr {fmt(trial.lr, 3)}, {trial.role})"
        )

    return fill


def write_tensorboard(results: RunResults, run_dir: Path, pngs: list[Path]) -> list[Path]:
    """The summary run, each seed's finder run and each trial's HParams; the files written."""
    import matplotlib.pyplot as plt

    written = []

    def summary(writer: SummaryWriter) -> None:
        writer.add_text("comparison", markdown_report(results))
        for finder in results.finders:
            lines = [
                f"- **{rule}**: {fmt(lr, 3)}"
                + (f" ({finder.rule_notes[rule]})" if rule in finder.rule_notes else "")
                for rule, lr in finder.rules.items()
            ]
            lines += [f"- note: {flag}" for flag in finder.flags()]
            writer.add_text(f"finder/seed{finder.seed}", "\n".join(lines))
        for png in pngs:
            writer.add_image(png.stem, plt.imread(png)[..., :3], dataformats="HWC")

    written.append(write_events(run_dir, run_dir / SUMMARY_RUN, summary))
    for finder in results.finders:
        seed_dir = run_dir / f"seed{finder.seed}"
        written.append(
            write_events(run_dir, seed_dir / FINDER_RUN, _finder_events(results, seed_dir))
        )
    ranks = _trial_rank(results)
    for trial in results.trials:
        rank = ranks.get(trial.key, (None, None))
        fill = _hparams_events(results, trial, run_dir.name, rank)
        written.append(write_events(run_dir, run_dir / trial.tb_run, fill))
    return written
