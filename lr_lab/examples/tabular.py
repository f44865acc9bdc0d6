"""Tabular classification: an MLP (or logistic regression) on small scikit-learn data sets.

What is in it:

- :class:`TabularDataModule`: one of four offline data sets, split into train and validation and
  standardized with train-set statistics: ``wine`` (178 samples, 13 features, 3 classes),
  ``iris`` (150, 4, 3), ``moons`` (two interleaved half circles, 2 features, 2 classes) and
  ``classification`` (scikit-learn's ``make_classification``: 20 features, 4 classes).
- :class:`MLPClassifier`: a cross-entropy MLP; ``hidden=0`` makes it logistic regression (one
  linear layer, a convex problem: the anchor of a study). ``schedule="cosine"`` anneals the LR.

The module's ``in_features`` and ``num_classes`` must match the data set; :data:`SHAPES` lists
them. Run it in the lab with a YAML config, e.g.::

    model:
      class_path: lr_lab.examples.tabular.MLPClassifier
      init_args: {in_features: 2, num_classes: 2, hidden: 32}
    data:
      class_path: lr_lab.examples.tabular.TabularDataModule
      init_args: {dataset: moons}

or directly: ``L.Trainer(max_epochs=10).fit(MLPClassifier(lr=0.1), TabularDataModule("wine"))``.
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

DatasetName = Literal["wine", "iris", "moons", "classification"]

#: (features, classes) of each data set: the module's ``in_features`` and ``num_classes``.
SHAPES: dict[str, tuple[int, int]] = {
    "wine": (13, 3),
    "iris": (4, 3),
    "moons": (2, 2),
    "classification": (20, 4),
}


def load_tabular(
    dataset: str, n_samples: int, noise: float, class_sep: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Features (float32, N x F) and labels (int64, N) of one data set; no download.

    Args:
        dataset: ``"wine"``, ``"iris"``, ``"moons"`` or ``"classification"``.
        n_samples: Number of samples of the generated sets (the bundled ones have fixed sizes).
        noise: Std of the Gaussian noise added to ``moons``.
        class_sep: Distance between the class clusters of ``classification`` (larger is easier).
        seed: Seed of the generated sets (their own ``random_state``, not the global RNG).

    Raises:
        ImportError: scikit-learn is not installed.
        ValueError: An unknown data set.
    """
    if dataset not in SHAPES:
        raise ValueError(f"dataset = {dataset!r}: must be one of {', '.join(SHAPES)}")
    try:
        from sklearn import datasets
    except ImportError:
        msg = "the tabular examples need scikit-learn: pip install scikit-learn"
        raise ImportError(msg) from None
    if dataset == "wine":
        x, y = datasets.load_wine(return_X_y=True)
    elif dataset == "iris":
        x, y = datasets.load_iris(return_X_y=True)
    elif dataset == "moons":
        x, y = datasets.make_moons(n_samples, noise=noise, random_state=seed)
    else:
        x, y = datasets.make_classification(
            n_samples,
            n_features=20,
            n_informative=6,
            n_redundant=4,
            n_classes=4,
            n_clusters_per_class=2,  # 8 clusters: a linear model does clearly worse than an MLP
            flip_y=0.02,
            class_sep=class_sep,
            random_state=seed,
        )
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _loader(data: TensorDataset, batch_size: int, shuffle: bool) -> DataLoader:
    """Batches cut by one index gather each; a shuffled order comes from the global torch RNG."""
    order = RandomSampler(data) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


class TabularDataModule(L.LightningDataModule):
    """A small tabular data set, split into train and validation and standardized.

    Args:
        dataset: Which data set (see :data:`SHAPES` for its features and classes).
        n_samples: Samples of the generated sets ``moons`` and ``classification``.
        noise: Std of the Gaussian noise of ``moons``.
        class_sep: Class separation of ``classification`` (larger is easier).
        batch_size: Training batch size (validation is one batch of the whole set).
        val_fraction: Share of the samples held out for validation.
        seed: Seed of the generated data and of the split (private generators, not the global RNG).
    """

    def __init__(
        self,
        dataset: DatasetName = "wine",
        n_samples: int = 800,
        noise: float = 0.2,
        class_sep: float = 1.5,
        batch_size: int = 16,
        val_fraction: float = 0.2,
        seed: int = 0,
    ):
        super().__init__()
        if dataset not in SHAPES:
            raise ValueError(f"dataset = {dataset!r}: must be one of {', '.join(SHAPES)}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction = {val_fraction}: must be between 0 and 1")
        self.save_hyperparameters()
        self.num_features, self.num_classes = SHAPES[dataset]
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Load, split and standardize the data once; later calls keep the first split."""
        if self.train_set is not None:
            return
        hp = self.hparams
        x, y = load_tabular(hp.dataset, hp.n_samples, hp.noise, hp.class_sep, hp.seed)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(hp.seed))
        n_val = round(hp.val_fraction * len(x))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        mean, std = x[train_idx].mean(dim=0), x[train_idx].std(dim=0)
        x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
        self.train_set = TensorDataset(x[train_idx], y[train_idx])
        self.val_set = TensorDataset(x[val_idx], y[val_idx])

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order comes from the global torch RNG."""
        return _loader(self.train_set, self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The whole validation set as one batch, in a fixed order."""
        return _loader(self.val_set, len(self.val_set), shuffle=False)


class MLPClassifier(L.LightningModule):
    """An MLP classifier trained with cross-entropy; ``hidden=0`` is logistic regression.

    Args:
        in_features: Input features (13 for wine, see :data:`SHAPES`).
        num_classes: Output classes.
        hidden: Width of each hidden layer; 0 gives a single linear layer (logistic regression).
        depth: Number of hidden layers (ignored when ``hidden`` is 0).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        momentum: SGD momentum (ignored by Adam and AdamW).
        weight_decay: Weight decay of the optimizer.
        schedule: ``"none"`` (constant LR) or ``"cosine"`` (cosine annealing to 0, stepped per batch).
        lr: The learning rate; the lab sets ``module.lr`` per trial.
    """

    def __init__(
        self,
        in_features: int = 13,
        num_classes: int = 3,
        hidden: int = 32,
        depth: int = 1,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        schedule: Literal["none", "cosine"] = "none",
        lr: float = 1e-3,
    ):
        super().__init__()
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(f"optimizer = {optimizer!r}: must be 'sgd', 'adam' or 'adamw'")
        if schedule not in ("none", "cosine"):
            raise ValueError(f"schedule = {schedule!r}: must be 'none' or 'cosine'")
        self.save_hyperparameters()
        self.lr = lr
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth if hidden > 0 else 0):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of shape (batch, num_classes) from features of shape (batch, in_features)."""
        return self.net(x)

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
        """One optimizer at ``self.lr``; with ``schedule="cosine"`` also a per-step cosine decay."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.parameters(), lr=self.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=hp.weight_decay)
        if hp.schedule == "none":
            return opt
        steps = self.trainer.estimated_stepping_batches  # inf without max_epochs or max_steps
        steps = int(steps) if math.isfinite(steps) else 1000
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
