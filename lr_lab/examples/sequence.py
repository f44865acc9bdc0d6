"""Sequences: a GRU or LSTM on two synthetic tasks, one classification and one regression.

What is in it:

- :class:`SequenceDataModule`: sequences generated from a private ``torch.Generator`` (no
  download, nothing drawn from the global RNG):

  - ``task="parity"``: random bit sequences (bits given as -1/+1); the label is the parity of the
    number of ones (2 classes, cross-entropy). A recurrent net solves 5 bits within 10 epochs
    only in a narrow band of learning rates; longer sequences are much harder.
  - ``task="sine"``: noisy sine waves with a random frequency, phase and amplitude; the target is
    the wave's next value after the window, without the noise (mean squared error).

- :class:`RecurrentModel`: a GRU or LSTM (``cell``) reading one value per step, with a linear head
  on its last hidden state: 2 logits for ``parity``, one value for ``sine``.

The module's ``task`` must match the data module's. Run it in the lab with a YAML config, e.g.::

    model:
      class_path: lr_lab.examples.sequence.RecurrentModel
      init_args: {task: sine, cell: lstm}
    data:
      class_path: lr_lab.examples.sequence.SequenceDataModule
      init_args: {task: sine}

or directly: ``L.Trainer(max_epochs=10).fit(RecurrentModel(lr=0.01), SequenceDataModule())``.
"""

from __future__ import annotations

import math
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

Task = Literal["parity", "sine"]
TASKS = ("parity", "sine")


def make_sequences(
    task: str, n_samples: int, seq_len: int, noise: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Inputs (float32, N x seq_len x 1) and targets of one synthetic task.

    Args:
        task: ``"parity"`` (targets: int64 labels, N) or ``"sine"`` (targets: float32, N x 1, the
            noiseless next value of each wave).
        n_samples: Number of sequences.
        seq_len: Steps per sequence.
        noise: Std of the Gaussian noise on the sine waves (``parity`` ignores it).
        seed: Seed of a private generator; the global RNG is not touched.

    Raises:
        ValueError: An unknown task.
    """
    gen = torch.Generator().manual_seed(seed)
    if task == "parity":
        bits = torch.randint(0, 2, (n_samples, seq_len), generator=gen)
        labels = bits.sum(dim=1) % 2
        return (2.0 * bits - 1.0).unsqueeze(-1), labels
    if task == "sine":
        freq = 0.15 + 0.45 * torch.rand(n_samples, 1, generator=gen)  # radians per step
        phase = 2 * math.pi * torch.rand(n_samples, 1, generator=gen)
        amp = 0.5 + torch.rand(n_samples, 1, generator=gen)
        t = torch.arange(seq_len + 1, dtype=torch.float32)
        wave = amp * torch.sin(freq * t + phase)
        observed = wave[:, :seq_len] + noise * torch.randn(n_samples, seq_len, generator=gen)
        return observed.unsqueeze(-1), wave[:, seq_len:]
    raise ValueError(f"task = {task!r}: must be one of {', '.join(TASKS)}")


def _loader(data: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
    """Batches cut by one index gather each; a shuffled order comes from the global torch RNG."""
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


class SequenceDataModule(L.LightningDataModule):
    """A synthetic sequence task, split into train and validation sets.

    Args:
        task: ``"parity"`` (classify the parity of a bit sequence) or ``"sine"`` (forecast the next
            value of a noisy sine wave).
        n_samples: Number of sequences.
        seq_len: Steps per sequence; 0 picks the task's default (5 for parity, 10 for sine).
        noise: Std of the Gaussian noise on the sine waves.
        batch_size: Training batch size (validation is one batch of the whole set).
        val_fraction: Share of the sequences held out for validation.
        seed: Seed of the sequences and the split (a private generator, not the global RNG).
    """

    def __init__(
        self,
        task: Task = "parity",
        n_samples: int = 1000,
        seq_len: int = 0,
        noise: float = 0.1,
        batch_size: int = 32,
        val_fraction: float = 0.2,
        seed: int = 0,
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task = {task!r}: must be one of {', '.join(TASKS)}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction = {val_fraction}: must be between 0 and 1")
        self.save_hyperparameters()
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Generate and split the sequences once; later calls keep them."""
        if self.train_set is not None:
            return
        hp = self.hparams
        seq_len = hp.seq_len or {"parity": 5, "sine": 10}[hp.task]
        x, y = make_sequences(hp.task, hp.n_samples, seq_len, hp.noise, hp.seed)
        n_val = round(hp.val_fraction * len(x))  # the sequences are i.i.d.: the first ones validate
        self.train_set = TensorDataset(x[n_val:], y[n_val:])
        self.val_set = TensorDataset(x[:n_val], y[:n_val])

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order comes from the global torch RNG."""
        return _loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The whole validation set as one batch, in a fixed order."""
        return _loader(self.val_set, len(self.val_set), shuffle=False)


class RecurrentModel(L.LightningModule):
    """A GRU or LSTM with a linear head on its last hidden state.

    Args:
        task: ``"parity"`` (2 logits, cross-entropy, logs ``val_acc`` too) or ``"sine"`` (one
            value, mean squared error).
        cell: ``"gru"`` or ``"lstm"``.
        hidden: Hidden size of the recurrent layers.
        num_layers: Number of stacked recurrent layers.
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        momentum: SGD momentum (ignored by Adam and AdamW).
        weight_decay: Weight decay of the optimizer.
        lr: The learning rate; the lab sets ``module.lr`` per trial.
    """

    def __init__(
        self,
        task: Task = "parity",
        cell: Literal["gru", "lstm"] = "gru",
        hidden: int = 32,
        num_layers: int = 1,
        optimizer: Literal["sgd", "adam", "adamw"] = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr: float = 1e-3,
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task = {task!r}: must be one of {', '.join(TASKS)}")
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell = {cell!r}: must be 'gru' or 'lstm'")
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer = {optimizer!r}: must be 'sgd', 'adam' or 'adamw'")
        self.save_hyperparameters()
        self.lr = lr
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(1, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, 2 if task == "parity" else 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (batch, 2) or forecasts (batch, 1) from sequences of shape (batch, steps, 1)."""
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y) if self.hparams.task == "parity" else F.mse_loss(out, y)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy (parity) or mean squared error (sine) of one batch."""
        x, y = batch
        loss = self._loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log ``val_loss``, and for ``parity`` also ``val_acc``."""
        x, y = batch
        out = self(x)
        self.log("val_loss", self._loss(out, y), prog_bar=True)
        if self.hparams.task == "parity":
            self.log("val_acc", (out.argmax(dim=1) == y).float().mean())

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
