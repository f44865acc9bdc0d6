"""The Lightning ``Trainer`` every trial and the finder use, and Lightning's console noise.

A trial's Trainer differs from ``L.Trainer(max_epochs=..., num_sanity_val_steps=0)`` only in
what does not touch the numbers: no logger (the lab's recorder writes each trial's TensorBoard
run), no checkpoints, no progress bar or model summary. That is what makes a trial replayable with
plain Lightning (README, "Replay a trial by hand"). No sanity check: every DataLoader iterator
draws a seed from the global RNG, so a sanity check would shift a shuffled DataLoader's order,
and the finder (which runs none) would not see the trials' data order.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lr_lab.config.schema import OWNED_TRAINER_KEYS


def quiet_lightning() -> None:
    """Silence Lightning's banners, tips and warnings that do not apply to the lab's fits."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*is smaller than the logging interval.*",
        ".*Total length of .* across ranks is zero.*",
        ".*You defined a `validation_step` but have no `val_dataloader`.*",
        ".*You passed in a `val_dataloader` but have no `validation_step`.*",
        ".*LightningModule.* has parameters that were not used.*",
        ".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
        ".*Trying to infer the `batch_size` from an ambiguous collection.*",
        ".*The number of training batches .* is smaller than the logging interval.*",
        # The lab stops these fits itself, with one line of its own (lr_lab.training.contract):
        ".*configure_optimizers` returned `None`.*",
        ".*`training_step` returned `None`.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


# Up to this many parameters a step is too small to share between threads: on a busy machine
# every extra intra-op thread waits for a core (scripts/bench.py --busy).
SMALL_MODEL_PARAMS = 1_000_000


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_threads(threads: int | None, n_params: int, side_by_side: int) -> int:
    """Torch intra-op threads for every trial and finder of a run, decided once.

    ``trials.threads`` if set; else 1 for a model of up to ``SMALL_MODEL_PARAMS`` parameters; else
    the cores each of ``side_by_side`` trials would get. It depends on the config and the
    machine, never on which trials are left or which of them ran in a worker, so a resumed run
    and every executor train on the same count (CPU results are bit for bit the same only then).

    Args:
        threads: ``trials.threads`` (None: automatic).
        n_params: Parameters of one model.
        side_by_side: Trials the executor may run at once (1 inline).
    """
    if threads is not None:
        return threads
    if n_params <= SMALL_MODEL_PARAMS:
        return 1
    return max(1, usable_cores() // max(1, side_by_side))


def apply_threads(threads: int) -> None:
    """Set this process's torch intra-op threads (a cheap no-op when already so)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def make_trainer(
    settings: dict[str, Any],
    *,
    root_dir: Path,
    callbacks: list[L.Callback],
    max_epochs: int,
    max_steps: int | None = None,
    has_val: bool | None = None,
    logger: Any = None,
    plugins: list[Any] | None = None,
) -> L.Trainer:
    """A Trainer stripped of what the lab does not use (checkpoints, summaries, progress bars).

    Args:
        settings: The user's ``lightning.Trainer`` arguments (``trainer:``; accelerator,
            gradient clipping, precision, ...); those the lab owns are set here.
        root_dir: Lightning's ``default_root_dir`` (the finder's temporary checkpoint goes here).
        callbacks: Callbacks such as the :class:`~lr_lab.recorder.LossRecorder`.
        max_epochs: Epoch limit (-1: none).
        max_steps: Optimizer-step limit (None: none).
        has_val: False turns validation off; None keeps Lightning's default (validate if the
            data has a validation loader).
        logger: The trial's own logger (the module's ``self.log`` metrics), or None.
        plugins: The lab's Trainer plugins, added to the user's.

    Returns:
        The Trainer.
    """
    extra = {k: v for k, v in settings.items() if k not in OWNED_TRAINER_KEYS}
    if plugins:
        given = extra.get("plugins") or []
        extra["plugins"] = [*(given if isinstance(given, list) else [given]), *plugins]
    if has_val is False:
        extra["limit_val_batches"] = 0
    return L.Trainer(
        devices=1,  # one device per trial; executors spread trials over devices
        max_epochs=max_epochs,
        max_steps=-1 if max_steps is None else max_steps,
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=root_dir,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        **extra,
    )
