"""A user's own classes, as a user would write them (not the lab's example), for the tests.

Named in configs as ``tests.user_modules.TinyNet`` etc. ``TinyNet`` has dropout, so its numbers
depend on the global RNG being seeded right before the fit; ``TinyData`` shuffles with a plain
``DataLoader(shuffle=True)``, whose order comes from the global RNG too.
"""

from __future__ import annotations

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
