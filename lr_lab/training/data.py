"""Regression data as tensors: synthetic ``y = f(x) + noise`` or a CSV file, in seeded batches.

Everything random here comes from generators seeded by the experiment seed, never from the global
RNG, so every trial of a seed sees the same samples, the same split and the same batch order.
Batches are cut from whole tensors with one index gather each, with no per-sample Python work.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lr_lab.config.csv_file import DataError, file_sha256, read_csv
from lr_lab.config.schema import RegressionDataArgs

__all__ = ["DataError", "RegressionDataModule", "TensorBatches", "file_sha256", "load_csv",
           "make_synthetic"]  # fmt: skip

# Validation is evaluated in chunks of this many samples; only speed depends on it, not the loss.
VAL_CHUNK = 8192


def make_synthetic(cfg: RegressionDataArgs, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw ``x`` uniformly from [-2, 2] and ``y = f(x) + noise`` as float32 tensors.

    Args:
        cfg: The data config (function, n_samples, input_dim, noise_std).
        generator: The only source of randomness.

    Returns:
        ``x`` of shape (n_samples, input_dim) and ``y`` of shape (n_samples, 1).
    """
    x = torch.rand(cfg.n_samples, cfg.input_dim, generator=generator) * 4 - 2
    if cfg.function == "linear":
        y = 2 * x.sum(dim=1, keepdim=True) + 1
    elif cfg.function == "sine":
        y = torch.sin(math.pi * x.mean(dim=1, keepdim=True))
    elif cfg.function == "quadratic":
        y = (x**2).mean(dim=1, keepdim=True)
    else:
        raise DataError(f"data.function = {cfg.function!r}: unknown function")
    y = y + cfg.noise_std * torch.randn(y.shape, generator=generator)
    return x, y


def load_csv(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read a numeric CSV with a header row; the last column is the target.

    Parsed once per process while the file is unchanged (:func:`lr_lab.csv_file.read_csv`);
    callers must not modify the returned tensors in place.

    Returns:
        ``x`` of shape (rows, columns - 1) and ``y`` of shape (rows, 1), float32.

    Raises:
        DataError: The file is missing, empty, not numeric, or has fewer than two columns.
    """
    t = torch.from_numpy(read_csv(path))
    return t[:, :-1].contiguous(), t[:, -1:].contiguous()


class TensorBatches:
    """Mini-batches cut from tensors; an iterable Lightning accepts in place of a DataLoader.

    With ``shuffle`` each pass draws a new permutation from a generator seeded once at
    construction, so a fresh instance always yields the same sequence of epochs. With
    ``steps_per_call`` set it yields lists of that many consecutive mini-batches (the same
    mini-batches, in the same order), for modules that take several optimizer steps per call.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        steps_per_call: int | None = None,
    ):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.steps_per_call = steps_per_call
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.x) / self.batch_size) / (self.steps_per_call or 1))

    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: the epoch's permutation is drawn at its first batch, not when iter() is
        # called. Lightning calls iter() once to check that the loader is iterable; drawn then,
        # every trial's first epoch would use the second permutation (and a plain-PyTorch replay
        # would have to skip one).
        if not self.shuffle:
            yield from zip(self.x.split(self.batch_size), self.y.split(self.batch_size))
            return
        order = torch.randperm(len(self.x), generator=self._generator).to(self.x.device)
        for idx in order.split(self.batch_size):
            yield self.x[idx], self.y[idx]

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        if self.steps_per_call is None:
            return batches
        return iter(lambda: list(itertools.islice(batches, self.steps_per_call)), [])


class RegressionDataModule(L.LightningDataModule):
    """Synthetic or CSV regression data, split and batched deterministically from ``seed``.

    The tensors are made once, at construction; ``setup`` moves them to the trainer's device so
    batches need no host-to-device copy. The arguments are those of
    :class:`~lr_lab.config.schema.RegressionDataArgs` (the config's ``data.init_args``), plus:

    Args:
        seed: Seeds the synthetic samples, the train/val split and the batch order (the lab
            passes each trial's seed).
        steps_per_call: Mini-batches per training item (see :class:`TensorBatches`).
    """

    def __init__(
        self,
        function: str = "linear",
        n_samples: int = 512,
        noise_std: float = 0.1,
        input_dim: int = 1,
        val_fraction: float = 0.2,
        batch_size: int = 32,
        csv_path: str | None = None,
        seed: int = 0,
        steps_per_call: int | None = None,
    ):
        super().__init__()
        cfg = RegressionDataArgs(function, n_samples, noise_std, input_dim, val_fraction,
                                 batch_size, csv_path)  # fmt: skip
        self.cfg, self.seed, self.steps_per_call = cfg, seed, steps_per_call
        generator = torch.Generator().manual_seed(seed)
        if cfg.csv_path:
            x, y = load_csv(cfg.csv_path)
        else:
            x, y = make_synthetic(cfg, generator)
        n_val = int(round(len(x) * cfg.val_fraction))
        split = torch.randperm(len(x), generator=generator)
        self.x_val, self.y_val = x[split[:n_val]], y[split[:n_val]]
        self.x_train, self.y_train = x[split[n_val:]], y[split[n_val:]]
        # The batch order has its own seed, derived from (but not equal to) the data seed.
        self.order_seed = seed + 1_000_003

    @property
    def input_dim(self) -> int:
        """Number of input features."""
        return self.x_train.shape[1]

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps (mini-batches) per training epoch."""
        return math.ceil(len(self.x_train) / self.cfg.batch_size)

    @property
    def has_val(self) -> bool:
        """Whether a validation set was held out."""
        return len(self.x_val) > 0

    def setup(self, stage: str) -> None:
        """Move the tensors to the trainer's device (a no-op on CPU)."""
        if self.trainer is not None:
            self.to_device(self.trainer.strategy.root_device)

    def to_device(self, device: torch.device | str) -> None:
        """Move all data tensors to ``device``."""
        for name in ("x_train", "y_train", "x_val", "y_val"):
            setattr(self, name, getattr(self, name).to(device))

    def train_dataloader(self) -> TensorBatches:
        """Shuffled training batches; every call replays the same epoch orders."""
        return TensorBatches(
            self.x_train,
            self.y_train,
            self.cfg.batch_size,
            True,
            self.order_seed,
            self.steps_per_call,
        )

    def val_dataloader(self) -> TensorBatches:
        """Validation set in large unshuffled chunks."""
        return TensorBatches(self.x_val, self.y_val, VAL_CHUNK, shuffle=False)
