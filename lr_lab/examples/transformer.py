"""A tiny transformer, trained with AdamW and a learning-rate schedule, on a synthetic sequence task.

What is in it:

- :class:`OrderDataModule`: "is token A before token B?". Each sequence holds random filler tokens
  and exactly one ``A`` and one ``B`` at random positions; the label says whether ``A`` comes
  first. Solving it needs attention and positions: a bag of tokens is at chance. The sequences come
  from a private ``torch.Generator`` (no download, nothing drawn from the global RNG).
- :class:`TinyTransformer`: token and learned position embeddings, one or two pre-norm
  ``nn.TransformerEncoderLayer`` (``d_model=32``), mean pooling and a linear head; AdamW at
  ``self.lr`` with ``schedule``:

  - ``"onecycle"``: ``OneCycleLR`` peaking at ``self.lr`` over the whole fit;
  - ``"warmup_cosine"``: linear warmup to ``self.lr``, then cosine decay to 0;
  - ``"none"``: a constant learning rate.

  Both schedules step every batch and span ``trainer.estimated_stepping_batches`` steps.

Run it in the lab with a YAML config, e.g.::

    model:
      class_path: lr_lab.examples.transformer.TinyTransformer
      init_args: {schedule: onecycle}
    data:
      class_path: lr_lab.examples.transformer.OrderDataModule

or directly: ``L.Trainer(max_epochs=10).fit(TinyTransformer(lr=3e-3), OrderDataModule())``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

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

TOKEN_A, TOKEN_B = 1, 2  # token 0 is never drawn; fillers are 3 .. vocab_size - 1


def make_order_task(
    n_samples: int, seq_len: int, vocab_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Token sequences (int64, N x seq_len) and labels (int64, N: 1 where ``A`` precedes ``B``).

    Args:
        n_samples: Number of sequences.
        seq_len: Tokens per sequence (at least 2).
        vocab_size: Number of token ids (at least 4: ``A``, ``B`` and fillers from 3 up).
        seed: Seed of a private generator; the global RNG is not touched.

    Raises:
        ValueError: ``seq_len`` below 2 or ``vocab_size`` below 4.
    """
    if seq_len < 2 or vocab_size < 4:
        raise ValueError(f"seq_len = {seq_len}, vocab_size = {vocab_size}: need >= 2 and >= 4")
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, vocab_size, (n_samples, seq_len), generator=gen)
    positions = torch.rand(n_samples, seq_len, generator=gen).argsort(dim=1)[:, :2]
    rows = torch.arange(n_samples)
    tokens[rows, positions[:, 0]] = TOKEN_A
    tokens[rows, positions[:, 1]] = TOKEN_B
    return tokens, (positions[:, 0] < positions[:, 1]).long()


def _loader(data: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
    """Batches cut by one index gather each; a shuffled order comes from the global torch RNG."""
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


class OrderDataModule(L.LightningDataModule):
    """The "is A before B" task, split into train and validation sets.

    Args:
        n_samples: Number of sequences.
        seq_len: Tokens per sequence (the module's ``seq_len`` must be at least this).
        vocab_size: Token ids (the module's ``vocab_size`` must match).
        batch_size: Training batch size (validation is one batch of the whole set).
        val_fraction: Share of the sequences held out for validation.
        seed: Seed of the sequences (a private generator, not the global RNG).
    """

    def __init__(
        self,
        n_samples: int = 800,
        seq_len: int = 12,
        vocab_size: int = 10,
        batch_size: int = 32,
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
        """Generate and split the sequences once; later calls keep them."""
        if self.train_set is not None:
            return
        hp = self.hparams
        x, y = make_order_task(hp.n_samples, hp.seq_len, hp.vocab_size, hp.seed)
        n_val = round(hp.val_fraction * len(x))  # the sequences are i.i.d.: the first ones validate
        self.train_set = TensorDataset(x[n_val:], y[n_val:])
        self.val_set = TensorDataset(x[:n_val], y[:n_val])

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order comes from the global torch RNG."""
        return _loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The whole validation set as one batch, in a fixed order."""
        return _loader(self.val_set, len(self.val_set), shuffle=False)


class TinyTransformer(L.LightningModule):
    """A tiny pre-norm transformer encoder classifying token sequences, trained with AdamW.

    Args:
        vocab_size: Token ids.
        seq_len: Longest sequence (the number of learned positions).
        num_classes: Output classes.
        d_model: Width of the embeddings and of attention.
        nhead: Attention heads.
        num_layers: Encoder layers.
        dim_feedforward: Hidden width of each layer's feed-forward block.
        dropout: Dropout in the encoder layers.
        weight_decay: AdamW's decoupled weight decay.
        schedule: ``"onecycle"``, ``"warmup_cosine"`` or ``"none"``.
        warmup_fraction: Share of the steps spent warming up (``"warmup_cosine"``; ``"onecycle"``
            uses it as ``pct_start``).
        lr: The learning rate (the peak of a schedule); the lab sets ``module.lr`` per trial.
    """

    def __init__(
        self,
        vocab_size: int = 10,
        seq_len: int = 12,
        num_classes: int = 2,
        d_model: int = 32,
        nhead: int = 4,
        num_layers: int = 1,
        dim_feedforward: int = 64,
        dropout: float = 0.0,
        weight_decay: float = 0.01,
        schedule: Literal["onecycle", "warmup_cosine", "none"] = "warmup_cosine",
        warmup_fraction: float = 0.1,
        lr: float = 1e-3,
    ):
        super().__init__()
        if schedule not in ("onecycle", "warmup_cosine", "none"):
            raise ValueError(
                f"schedule = {schedule!r}: must be 'onecycle', 'warmup_cosine' or 'none'"
            )
        if not 0.0 < warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction = {warmup_fraction}: must be between 0 and 1")
        self.save_hyperparameters()
        self.lr = lr
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(seq_len, d_model))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        """Class logits of shape (batch, num_classes) from token ids of shape (batch, steps)."""
        h = self.embed(tokens) + self.position[: tokens.shape[1]]
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h).mean(dim=1))

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

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """AdamW at ``self.lr``, with the ``schedule`` stepped every batch."""
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
        if hp.schedule == "none":
            return opt
        total = self.trainer.estimated_stepping_batches  # inf without max_epochs or max_steps
        total = max(2, int(total)) if math.isfinite(total) else 1000
        if hp.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=self.lr, total_steps=total, pct_start=hp.warmup_fraction
            )
        else:
            warmup = max(1, round(hp.warmup_fraction * total))

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
                return 0.5 * (1.0 + math.cos(math.pi * progress))

            scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
