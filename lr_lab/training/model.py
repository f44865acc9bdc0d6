"""The net (a plain ``nn.Module``) and the LightningModule that trains it.

The module owns the loss (MSE), the hyperparameter ``lr`` (found by ``Tuner.lr_find``) and the
optimizer. It follows the contract any user module follows (``training_step`` returns the loss,
``validation_step`` logs ``val_loss``), so it also runs as an ordinary Lightning fit; the lab's
fast path (:mod:`lr_lab.training.chunked`) subclasses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SimpleRegressionNet(nn.Module):
    """An MLP: Linear -> ReLU -> ... -> Linear, one output.

    Args:
        input_dim: Number of input features.
        hidden_dims: Widths of the hidden layers; empty means linear regression.
    """

    def __init__(self, input_dim: int, hidden_dims: Sequence[int] = (32, 32)):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Predict y of shape (batch, 1) from x of shape (batch, input_dim)."""
        return self.layers(x)


class RegressionModule(L.LightningModule):
    """Trains :class:`SimpleRegressionNet` with MSE at learning rate ``lr``.

    Its arguments are those of :class:`~lr_lab.config.schema.RegressionModelArgs` (the config's
    ``model.init_args``), plus the learning rate.

    Args:
        hidden_dims: Hidden layer widths.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty of the optimizer.
        input_dim: Number of input features.
        lr: The learning rate (the hyperparameter the lab varies).
    """

    def __init__(
        self,
        hidden_dims: Sequence[int] = (32, 32),
        optimizer: str = "sgd",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        input_dim: int = 1,
        lr: float = 0.01,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.net = SimpleRegressionNet(input_dim, list(hidden_dims))

    def forward(self, x: Tensor) -> Tensor:
        """Predictions of shape (batch, 1)."""
        return self.net(x)

    def _loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Mean squared error of one batch (Lightning steps the optimizer on it)."""
        return self._loss(batch)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Mean squared error of one validation chunk, logged as ``val_loss``."""
        loss = self._loss(batch)
        self.log("val_loss", loss, batch_size=len(batch[0]))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The configured optimizer at ``self.lr``."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=self.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        if hp.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
        raise ValueError(f"optimizer.name = {hp.optimizer!r}: expected 'sgd' or 'adam'")
