"""A user's own classes, as a user would write them (not the lab's example), for the tests.

Named in configs as ``tests.user_modules.TinyNet`` etc. ``TinyNet`` has dropout, so its numbers
depend on the global RNG being seeded right before the fit; ``TinyData`` shuffles with a plain
``DataLoader(shuffle=True)``, whose order comes from the global RNG too.
"""

from __future__ import annotations

import math
import os

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyNet(L.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.01, dropout: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.5)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class TinyData(L.LightningDataModule):
    def __init__(self, n: int = 96, batch_size: int = 16):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage: str) -> None:
        gen = torch.Generator().manual_seed(123)
        x = torch.rand(self.n, 2, generator=gen) * 2 - 1
        y = x[:, :1] * 3 - x[:, 1:] + 0.05 * torch.randn(self.n, 1, generator=gen)
        cut = self.n * 3 // 4
        self.train, self.val = TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)


class UnseededData(TinyData):
    """Shuffles with a generator seeded from the OS: each trial sees another order."""

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True, generator=gen)


class NoLR(TinyNet):
    """Keeps its learning rate under a name Lightning's finder does not know."""

    def __init__(self, hidden: int = 8, step_size: float = 0.01):
        super().__init__(hidden=hidden)
        del self.lr
        self.hparams.pop("lr")
        self.step_size = step_size

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.step_size)


class ReturnsNone(TinyNet):
    def training_step(self, batch, batch_idx):
        super().training_step(batch, batch_idx)


class LogsOtherMetric(TinyNet):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))


class RaisesInStep(TinyNet):
    def training_step(self, batch, batch_idx):
        if self.global_step == 3:
            raise ValueError("bad batch")
        return super().training_step(batch, batch_idx)


class TwoArgumentError(Exception):
    """An exception that pickles but does not unpickle (``__init__`` takes two arguments)."""

    def __init__(self, message, detail):
        super().__init__(message)
        self.detail = detail


class RaisesOddError(TinyNet):
    def training_step(self, batch, batch_idx):
        raise TwoArgumentError("a user's own error", detail=1)


# Modules that break the contract where only a fit shows it (tests/test_contract.py).


class LogsMetricInTraining(TinyNet):
    """Logs the metric's name from training_step; validation logs nothing."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("val_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pass


class LogsMetricOnce(TinyNet):
    """Validates in epoch 0 only: epoch 1 would reuse epoch 0's value."""

    def validation_step(self, batch, batch_idx):
        if self.current_epoch == 0:
            super().validation_step(batch, batch_idx)


class HardCodedLR(TinyNet):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class NoOptimizer(TinyNet):
    def configure_optimizers(self):
        return None


class TwoOptimizers(TinyNet):
    def configure_optimizers(self):
        half = len(list(self.parameters())) // 2
        params = list(self.parameters())
        return [
            torch.optim.SGD(params[:half], lr=self.lr),
            torch.optim.SGD(params[half:], lr=self.lr),
        ]


class PerSampleLoss(TinyNet):
    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self(x) - y).pow(2).flatten()


class DictWithoutLoss(TinyNet):
    def training_step(self, batch, batch_idx):
        return {"mse": super().training_step(batch, batch_idx)}


class GaussianNLL(L.LightningModule):
    """Predicts a mean and a variance: its loss, a Gaussian negative log-likelihood, goes below 0."""

    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))

    def _nll(self, batch):
        x, y = batch
        out = self.net(x)
        return F.gaussian_nll_loss(out[:, :1], y, F.softplus(out[:, 1:]) + 1e-4, full=True)

    def training_step(self, batch, batch_idx):
        return self._nll(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self._nll(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def make_net(hidden: int = 8, dropout: float = 0.1) -> TinyNet:
    """A factory, as pytorch-forecasting's ``from_dataset``: the config names it, not a class."""
    return TinyNet(hidden=hidden, dropout=dropout)


class LayerInSetup(TinyNet):
    def setup(self, stage: str) -> None:
        self.head = nn.Linear(1, 1)

    def forward(self, x):
        return self.head(self.net(x))


class InfiniteValidation(TinyNet):
    """Trains fine, but its validation metric is inf at learning rates above 0.06."""

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("val_loss", loss * math.inf if self.lr > 0.06 else loss)


class NoBatches(TinyData):
    """drop_last with a batch larger than the data: an epoch of nothing."""

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=1000, drop_last=True)


class ExitsInStep(TinyNet):
    """Calls sys.exit(3) in training_step, as a script's error handling might."""

    def training_step(self, batch, batch_idx):
        if self.global_step == 2:
            import sys

            sys.exit(3)
        return super().training_step(batch, batch_idx)


class EndlessStep(TinyNet):
    """A training_step that never returns (a data loader stuck, a while loop gone wrong)."""

    def training_step(self, batch, batch_idx):
        if self.lr > 0.02 and self.global_step == 2:
            while True:
                pass
        return super().training_step(batch, batch_idx)
