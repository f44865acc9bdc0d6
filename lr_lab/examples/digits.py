"""Run with ``python scripts/run.py --config configs/digits.yaml``: an MLP on scikit-learn's digits.

A real-data example of the classes a user brings to the lab: a LightningModule that keeps its
learning rate in ``self.lr`` and a LightningDataModule, both named by ``class_path`` in YAML. The
data is scikit-learn's bundled handwritten digits (1797 8x8 images, 10 classes, no download).

Determinism: the train/val split depends only on ``split_seed`` (a private ``torch.Generator``).
The training batch order is drawn from the global torch RNG by ``RandomSampler``, so it follows
``lightning.seed_everything``: the same seed before a fit gives the same batches in the same order.
"""

from __future__ import annotations

import functools
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)

NUM_FEATURES = 64  # 8x8 pixels, each 0..16
NUM_CLASSES = 10


@functools.cache
def load_digits_tensors() -> tuple[Tensor, Tensor]:
    """All 1797 digits, loaded once per process: pixels (float32, N x 64) and labels (int64, N).

    Raises:
        ImportError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        msg = "the digits example needs scikit-learn: pip install -e '.[examples]' (or pip install scikit-learn)"
        raise ImportError(msg) from None
    x, y = load_digits(return_X_y=True)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _loader(data: TensorDataset, batch_size: int, shuffle: bool, num_workers: int) -> DataLoader:
    """Batches cut by one index gather each: the sampler yields index lists, no per-sample work."""
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=num_workers)


class DigitsDataModule(L.LightningDataModule):
    """The digits split into train and validation sets, optionally standardized.

    Args:
        batch_size: Training batch size (validation is one batch of the whole set).
        val_fraction: Share of the samples held out for validation.
        split_seed: Seed of the split; the split ignores the global RNG.
        standardize: Scale each pixel to zero mean and unit variance with train-set statistics.
        num_workers: DataLoader worker processes (0 loads batches in the main process).
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        standardize: bool = True,
        num_workers: int = 0,
    ):
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction = {val_fraction}: must be between 0 and 1")
        self.save_hyperparameters()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Split (and standardize) the data; later calls keep the first split."""
        if self.train_set is not None:
            return
        hp = self.hparams
        x, y = load_digits_tensors()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(hp.split_seed))
        n_val = round(hp.val_fraction * len(x))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if hp.standardize:
            mean = x[train_idx].mean(dim=0)
            std = x[train_idx].std(dim=0)
            x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))  # blank pixels stay 0
        self.train_set = TensorDataset(x[train_idx], y[train_idx])
        self.val_set = TensorDataset(x[val_idx], y[val_idx])

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order comes from the global torch RNG."""
        return _loader(self.train_set, self.hparams.batch_size, True, self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        """The whole validation set as one batch, in a fixed order."""
        return _loader(self.val_set, len(self.val_set), False, self.hparams.num_workers)


class DigitsClassifier(L.LightningModule):
    """An MLP (64 -> hidden -> 10) trained with cross-entropy at learning rate ``lr``.

    Args:
        hidden: Width of the hidden layer.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum (ignored by Adam).
        lr: The learning rate; the lab sets ``module.lr`` per trial and the finder overrides it.
    """

    def __init__(
        self,
        hidden: int = 64,
        optimizer: Literal["sgd", "adam"] = "sgd",
        momentum: float = 0.0,
        lr: float = 0.01,
    ):
        super().__init__()
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer = {optimizer!r}: must be 'sgd' or 'adam'")
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape (batch, 10) from pixels of shape (batch, 64)."""
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch (Lightning steps the optimizer on it)."""
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log ``val_loss`` (cross-entropy, the lab's metric) and ``val_acc``."""
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD (with ``momentum``) or Adam at ``self.lr``, read when the fit starts."""
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.hparams.momentum)
