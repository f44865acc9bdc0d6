"""User classes for the tests of how user classes are configured and checked (test_user_config).

Named in configs as ``tests.user_config_modules.HintedNet`` etc.; each breaks one rule, or
has type hints for ``init_args`` to be converted by.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def tiny_data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 2, generator=gen)
    return x, x.sum(1, keepdim=True)


class HintedNet(L.LightningModule):
    """Every kind of ``__init__`` parameter: typed, a list, optional, a string, untyped."""

    def __init__(
        self,
        hidden: int = 4,
        lr: float = 0.01,
        wd: float = 0.0,
        sizes: list[int] | None = None,
        name: str = "net",
        untyped=0.5,  # noqa: ANN001
    ):
        super().__init__()
        self.lr, self.wd = lr, wd
        self.seen = {"hidden": hidden, "wd": wd, "sizes": sizes, "name": name, "untyped": untyped}
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        # weight_decay must be a float: a string '1e-4' would fail here, after the run folder.
        return torch.optim.SGD(self.parameters(), lr=self.lr, weight_decay=self.wd)


class ManualNet(HintedNet):
    """Manual optimization: Lightning's finder never moves this optimizer's LR."""

    def __init__(self, lr: float = 0.01):
        super().__init__(lr=lr)
        self.automatic_optimization = False


class NoTrainingStep(L.LightningModule):
    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr
        self.layer = nn.Linear(2, 1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Data(L.LightningDataModule):
    def __init__(self, batch_size: int = 16):
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(*tiny_data()), batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(TensorDataset(*tiny_data(32)), batch_size=32)


class NoTrainLoader(L.LightningDataModule):
    def val_dataloader(self):
        return DataLoader(TensorDataset(*tiny_data(32)), batch_size=32)
