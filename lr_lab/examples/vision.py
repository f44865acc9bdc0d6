"""Vision: a small CNN on scikit-learn's handwritten digits as 1x8x8 images, with or without BatchNorm.

What is in it:

- :class:`DigitsImageDataModule`: 1200 of the 1797 bundled digits (no download) as images of
  shape (1, 8, 8), scaled to zero mean and unit variance with the training set's pixel statistics.
- :class:`DigitsCNN`: two 3x3 convolutions (each optionally followed by BatchNorm), a 2x2 max pool
  and a linear head, about 4k parameters, trained with cross-entropy. BatchNorm usually widens the
  range of learning rates that train well: compare ``batchnorm: true`` and ``false`` in a study.

Run it in the lab with a YAML config, e.g.::

    model:
      class_path: lr_lab.examples.vision.DigitsCNN
      init_args: {batchnorm: true, optimizer: sgd}
    data:
      class_path: lr_lab.examples.vision.DigitsImageDataModule

or directly: ``L.Trainer(max_epochs=10).fit(DigitsCNN(lr=0.03), DigitsImageDataModule())``.
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

NUM_CLASSES = 10


@functools.cache
def load_digit_images() -> tuple[Tensor, Tensor]:
    """All 1797 digits, loaded once per process: images (float32, N x 1 x 8 x 8, 0..16), labels.

    Raises:
        ImportError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        msg = "the vision example needs scikit-learn: pip install scikit-learn"
        raise ImportError(msg) from None
    x, y = load_digits(return_X_y=True)
    images = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
    return images, torch.as_tensor(y, dtype=torch.int64)


def _loader(data: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
    """Batches cut by one index gather each; a shuffled order comes from the global torch RNG."""
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


class DigitsImageDataModule(L.LightningDataModule):
    """The digits as 1x8x8 images, split into train and validation sets.

    Args:
        n_samples: Use only this many digits (a random subset, 1200 keeps a fit fast); 0 uses
            all 1797.
        batch_size: Training batch size (validation is one batch of the whole set).
        val_fraction: Share of the samples held out for validation.
        seed: Seed of the subset and split (a private generator, not the global RNG).
    """

    def __init__(
        self,
        n_samples: int = 1200,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        seed: int = 0,
    ):
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction = {val_fraction}: must be between 0 and 1")
        self.save_hyperparameters()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Subset, split and scale the images once; later calls keep the first split."""
        if self.train_set is not None:
            return
        hp = self.hparams
        x, y = load_digit_images()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(hp.seed))
        if 0 < hp.n_samples < len(x):
            perm = perm[: hp.n_samples]
        n_val = round(hp.val_fraction * len(perm))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        mean, std = x[train_idx].mean(), x[train_idx].std()  # one scale for all pixels
        x = (x - mean) / std
        self.train_set = TensorDataset(x[train_idx], y[train_idx])
        self.val_set = TensorDataset(x[val_idx], y[val_idx])

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order comes from the global torch RNG."""
        return _loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The whole validation set as one batch, in a fixed order."""
        return _loader(self.val_set, len(self.val_set), shuffle=False)


class DigitsCNN(L.LightningModule):
    """A small CNN for 1x8x8 digits: conv-conv-pool-linear, with or without BatchNorm.

    Args:
        channels: Channels of the first convolution (the second has twice as many).
        batchnorm: Put a BatchNorm2d after each convolution (the convolutions then have no bias).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        momentum: SGD momentum (ignored by Adam and AdamW).
        weight_decay: Weight decay of the optimizer.
        lr: The learning rate; the lab sets ``module.lr`` per trial.
    """

    def __init__(
        self,
        channels: int = 8,
        batchnorm: bool = False,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr: float = 1e-3,
    ):
        super().__init__()
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer = {optimizer!r}: must be 'sgd', 'adam' or 'adamw'")
        self.save_hyperparameters()
        self.lr = lr
        c1, c2 = channels, 2 * channels

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=not batchnorm)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU()] if batchnorm else [conv, nn.ReLU()]

        self.features = nn.Sequential(*block(1, c1), *block(c1, c2), nn.MaxPool2d(2))
        self.head = nn.Linear(c2 * 4 * 4, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape (batch, 10) from images of shape (batch, 1, 8, 8)."""
        return self.head(self.features(x).flatten(1))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch."""
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log ``val_loss`` (cross-entropy) and ``val_acc``."""
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """One optimizer at ``self.lr``."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=self.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        if hp.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
