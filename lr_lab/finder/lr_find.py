"""Lightning's own LR finder (``Tuner.lr_find``), run from the seed's initial checkpoint.

The finder trains on the same data, in the same order, as the trials (seeded the same way), with a
learning rate that grows every step from ``min_lr`` to ``max_lr``, and records Lightning's smoothed
loss per step. Lightning's curve is kept as Lightning has it; the raw loss of each step is
recorded beside it (the finder replaces the Trainer's callbacks, so a hook on the module records
it, without touching the search) and gives the bias-corrected curve (:func:`corrected_curve`).
The finder's temporary ``.lr_find_<uuid>.ckpt`` goes to a private folder inside the seed's folder
that is removed on the way out, whatever happens.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.tuner import Tuner
from torch import Tensor

from lr_lab import interrupt
from lr_lab.analysis.records import FinderResult
from lr_lab.config.schema import CORRECTED, FinderConfig
from lr_lab.finder.rules import apply_rules
from lr_lab.training.initial_state import load_initial_state, weights_sha256
from lr_lab.training.problem import FitSettings, Problem
from lr_lab.training.recorder import batch_sha256
from lr_lab.training.trainer import apply_threads, make_trainer

SCRATCH_PREFIX = ".lr_find-"

# The finder's smoothing, as Lightning does it and as it should be done (Lightning #14167).
# Lightning's ``_LRCallback`` keeps an exponential moving average of the per-step loss,
# ``avg = beta * avg + (1 - beta) * loss`` (beta = 0.98), and divides it by ``1 - beta**(global_step
# + 1)`` to remove the bias of starting at 0. But ``global_step`` has already counted the step when
# the callback runs, so the first point is divided by ``1 - beta**2`` instead of ``1 - beta``: it
# shows about half the true loss (0.02 / 0.0396 = 0.505), and every finder plot starts with a false
# rise over the smallest learning rates. :func:`corrected_curve` divides by ``1 - beta**n``, ``n``
# the number of losses averaged, so its first point is the first loss itself.
#
# Both functions mirror Lightning's handling of a step without a loss (a NaN point that leaves the
# average alone) and of a non-finite loss (which poisons the average, as it does in Lightning).
BETA = 0.98  # Lightning's default for _LRCallback


def _ema(raw: Sequence[float | None], beta: float, offset: int) -> list[float]:
    # n counts the losses averaged, which is also Lightning's global_step after the step (a step
    # without a loss takes no optimizer step).
    out, avg, n = [], 0.0, 0
    for value in raw:
        if value is None:
            out.append(math.nan)
            continue
        n += 1
        avg = beta * avg + (1 - beta) * value
        out.append(avg / (1 - beta ** (n + offset)))
    return out


def corrected_curve(raw: Sequence[float | None], beta: float = BETA) -> list[float]:
    """The moving average of ``raw`` with the right bias correction (first point = first loss).

    Args:
        raw: The loss of each finder step; ``None`` where a step returned no loss.
        beta: The smoothing factor.
    """
    return _ema(raw, beta, offset=0)


def lightning_curve(raw: Sequence[float | None], beta: float = BETA) -> list[float]:
    """The curve Lightning records from the same losses (its bias correction one step late)."""
    return _ema(raw, beta, offset=1)


class _RawLoss:
    """A module hook that records each finder step's loss, read as Lightning's callback reads it.

    It also keeps Lightning's early stop meaningful for a loss that goes below 0 (a
    log-likelihood): Lightning stops when the smoothed loss exceeds ``threshold`` x its best, which
    for a best of -3 (-12) stops at the next step. Where the best is not positive, the hook (which
    runs after Lightning's callback) decides instead with the same threshold read as a distance:
    the best plus ``threshold - 1`` times its size. For a positive best it changes nothing.
    """

    def __init__(self, module: L.LightningModule, threshold: float | None):
        self.module, self.threshold = module, threshold
        self.losses: list[float | None] = []
        self.first_batch_sha256 = ""
        self._original = module.on_train_batch_end
        self._best: float | None = None

    def __call__(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.first_batch_sha256:
            self.first_batch_sha256 = batch_sha256(batch)
        if not outputs:
            self.losses.append(None)  # Lightning records NaN and leaves its average alone
        else:
            loss = outputs if isinstance(outputs, Tensor) else outputs["loss"]
            self.losses.append(float(loss.item()))
        self._early_stop_at_any_sign()
        self._original(outputs, batch, batch_idx)
        interrupt.check()

    def _early_stop_at_any_sign(self) -> None:
        trainer = self.module.trainer
        finder = next((c for c in trainer.callbacks if hasattr(c, "best_loss")), None)
        if finder is None or not finder.losses:  # Lightning's _LRCallback: its curve and best
            return
        best, self._best = self._best, finder.best_loss
        if self.threshold is None or best is None or best > 0:
            return
        smoothed = finder.losses[-1]
        limit = best + (self.threshold - 1) * abs(best)
        trainer.should_stop = trainer.global_step > 1 and smoothed > limit


class _OwnCheckpoint(TorchCheckpointIO):
    """The checkpoint Lightning's finder saved a moment before (in a private folder), loaded whole.

    A module's hyperparameters may hold objects (a pytorch-forecasting model's loss and its
    dataset's parameters) that torch's weights-only loading refuses: the finder then failed after
    its search, with no result.
    """

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> Any:
        """The checkpoint the finder saved itself, loaded whole."""
        where = {} if map_location is None else {"map_location": map_location}
        return super().load_checkpoint(path, weights_only=False, **where)


def run_finder(
    problem: Problem,
    fit: FitSettings,
    f: FinderConfig,
    seed: int,
    init_path: Path,
    log_dir: Path,
    threads: int = 1,
) -> FinderResult:
    """Run ``Tuner.lr_find`` on a fresh module loaded from ``init_path``.

    Args:
        problem: The module and data.
        fit: The Trainer arguments (the user's ``trainer:``).
        f: The finder's settings.
        seed: The data seed (same data and order as the trials).
        init_path: The seed's ``init.ckpt``.
        log_dir: The seed's folder (the temporary checkpoint goes to a scratch folder in it).
        threads: Torch intra-op threads (the run's, as its trials').

    Returns:
        Lightning's curve, the raw and corrected curves, Lightning's suggestion (or why there is
        none), and whether the search stopped early. ``rules`` is left for :mod:`lr_lab.finder.rules`.

    Raises:
        RuntimeError: The finder changed the module's weights (it must restore them).
    """
    module = problem.make_model(f.min_lr)
    init_sha = load_initial_state(init_path, module)
    apply_threads(threads)
    L.seed_everything(seed, verbose=False)
    datamodule = problem.make_data(seed)
    raw = _RawLoss(module, f.early_stop_threshold)
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=log_dir))
    try:
        trainer = make_trainer(fit.trainer, root_dir=scratch, callbacks=[], max_epochs=-1,
                               max_steps=f.num_training, plugins=[_OwnCheckpoint()])  # fmt: skip
        module.on_train_batch_end = raw
        L.seed_everything(seed, verbose=False)
        # Lightning's finder draws its own tqdm bar; the lab shows one progress display.
        with contextlib.redirect_stderr(io.StringIO()):
            finder = Tuner(trainer).lr_find(
                module,
                datamodule=datamodule,
                min_lr=f.min_lr,
                max_lr=f.max_lr,
                num_training=f.num_training,
                mode=f.mode,
                early_stop_threshold=f.early_stop_threshold,
                update_attr=False,
            )
    finally:
        module.__dict__.pop("on_train_batch_end", None)
        shutil.rmtree(scratch, ignore_errors=True)
    if weights_sha256(module.state_dict()) != init_sha:
        raise RuntimeError("Lightning's LR finder did not restore the initial weights")
    losses = [float(v) for v in finder.results["loss"]]
    result = FinderResult(
        seed=seed,
        lr=[float(v) for v in finder.results["lr"]],
        loss=losses,
        raw_loss=[math.nan if v is None else v for v in raw.losses],
        corrected_loss=corrected_curve(raw.losses),
        curve=f.curve,
        num_training=f.num_training,
        stopped_early=len(losses) < f.num_training,
        nonfinite_points=sum(not math.isfinite(v) for v in losses),
        lightning_version=L.__version__,
        init_sha256=init_sha,
        first_batch_sha256=raw.first_batch_sha256,
        threads=threads,
        wall_s=time.perf_counter() - start,
    )
    result.suggestion, result.suggestion_note = _lightning_suggestion(finder, len(losses))
    return result


def lightning_rule(lrs: list[float], losses: list[float]) -> tuple[float | None, str]:
    """Lightning's own ``suggestion()`` algorithm, run on another curve (the corrected one)."""
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    finder = _LRFinder("exponential", lrs[0], lrs[-1], len(lrs))
    finder.results = {"lr": list(lrs), "loss": list(losses)}
    return _lightning_suggestion(finder, len(losses))


def read_rules(f: FinderConfig, result: FinderResult) -> None:
    """Fill ``result.rules`` (and ``rule_notes``): each rule read off the curve(s) chosen.

    ``lightning`` is always what Lightning's ``suggestion()`` returned on its own curve; with
    ``finder.curve: both``, ``lightning@corrected`` is the same algorithm on the corrected curve.
    """
    curves = [("", result.rule_curve())]
    if f.curve == "both":
        curves.append((CORRECTED, result.corrected_loss))
    for suffix, losses in curves:
        if suffix:
            lightning_lr, note = lightning_rule(result.lr, losses)
        else:
            lightning_lr, note = result.suggestion, result.suggestion_note
        suggestions = apply_rules(f.rules, result.lr, losses, lightning_lr, note)
        for rule, suggestion in suggestions.items():
            result.rules[rule + suffix] = suggestion.lr
            if suggestion.note:
                result.rule_notes[rule + suffix] = suggestion.note


def clean_scratch(folder: Path) -> None:
    """Remove finder scratch folders an earlier, killed process left in a seed's folder."""
    for stale in folder.glob(f"{SCRATCH_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _lightning_suggestion(finder: Any, n_points: int) -> tuple[float | None, str]:
    # suggestion() logs an error when it cannot decide; the lab reports the reason itself.
    lf_logger = logging.getLogger("lightning.pytorch.tuner.lr_finder")
    level = lf_logger.level
    lf_logger.setLevel(logging.CRITICAL)
    try:
        value = finder.suggestion()
    finally:
        lf_logger.setLevel(level)
    if value is None:
        return None, (
            f"the finder recorded {n_points} points; Lightning drops the first 10 and the last "
            "and needs 2 finite points left to take a slope"
        )
    return float(value), ""
