"""Lightning's own LR finder (``Tuner.lr_find``), run from the seed's initial checkpoint.

The finder trains on the same data order as the trials, with a learning rate that grows every
step from ``min_lr`` to ``max_lr``, and records Lightning's smoothed loss per step. Its temporary
``.lr_find_<uuid>.ckpt`` goes to a private folder inside the run folder that is removed on the way
out, whatever happens. Lightning swaps in a dummy logger during the search, so the curve is
written to TensorBoard here, afterwards.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.tuner import Tuner

from lr_lab.config import ExperimentConfig
from lr_lab.data import RegressionDataModule
from lr_lab.initial_state import load_initial_state, weights_sha256
from lr_lab.results import FinderResult
from lr_lab.trials import build_module, make_trainer

FINDER_RUN = "finder"


def run_finder(cfg: ExperimentConfig, seed: int, init_path: Path, log_dir: Path) -> FinderResult:
    """Run ``Tuner.lr_find`` on a fresh module loaded from ``init_path``.

    Args:
        cfg: The experiment config (``cfg.finder`` holds the finder's settings).
        seed: The data seed (same data and order as the trials).
        init_path: The seed's ``init.ckpt``.
        log_dir: The seed's folder; the curve goes to the TensorBoard run ``log_dir/finder``.

    Returns:
        The finder's curve, Lightning's suggestion (or why there is none), and whether the search
        stopped early. ``rules`` is left for :mod:`lr_lab.rules` to fill.

    Raises:
        RuntimeError: The finder changed the module's weights (it must restore them).
    """
    f = cfg.finder
    datamodule = RegressionDataModule(cfg.data, seed)
    module = build_module(cfg, datamodule.input_dim, f.min_lr)
    init_sha = load_initial_state(init_path, module)
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=".lr_find-", dir=log_dir))
    try:
        trainer = make_trainer(
            cfg,
            root_dir=scratch,
            callbacks=[],
            has_val=False,
            max_epochs=-1,
            max_steps=f.num_training,
        )
        datamodule.trainer = trainer
        datamodule.setup("fit")
        # Lightning's finder draws its own tqdm bar; the lab shows one progress display.
        with contextlib.redirect_stderr(io.StringIO()):
            finder = Tuner(trainer).lr_find(
                module,
                train_dataloaders=datamodule.train_dataloader(),
                min_lr=f.min_lr,
                max_lr=f.max_lr,
                num_training=f.num_training,
                mode=f.mode,
                early_stop_threshold=f.early_stop_threshold,
                update_attr=False,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if weights_sha256(module.state_dict()) != init_sha:
        raise RuntimeError("Lightning's LR finder did not restore the initial weights")
    lrs = [float(v) for v in finder.results["lr"]]
    losses = [float(v) for v in finder.results["loss"]]
    result = FinderResult(
        seed=seed,
        lr=lrs,
        loss=losses,
        num_training=f.num_training,
        stopped_early=len(losses) < f.num_training,
        nonfinite_points=sum(not math.isfinite(v) for v in losses),
        lightning_version=L.__version__,
        init_sha256=init_sha,
        wall_s=time.perf_counter() - start,
    )
    result.suggestion, result.suggestion_note = _lightning_suggestion(finder, len(losses))
    log_finder_curve(result, log_dir)
    return result


def _lightning_suggestion(finder: object, n_points: int) -> tuple[float | None, str]:
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


def log_finder_curve(result: FinderResult, log_dir: Path) -> None:
    """Write the finder's curve to the TensorBoard run ``finder``: loss and LR per finder step."""
    logger = TensorBoardLogger(log_dir, name="", version=FINDER_RUN, default_hp_metric=False)
    for step, (lr, loss) in enumerate(zip(result.lr, result.loss)):
        metrics = {"finder/lr": lr, "finder/log10_lr": math.log10(lr)}
        if math.isfinite(loss):
            metrics["finder/loss"] = loss
        logger.log_metrics(metrics, step=step)
    logger.finalize("success")
