"""Forecasting with pytorch-forecasting: N-BEATS made by ``NBeats.from_dataset``, in the lab.

pytorch-forecasting builds its models from the training data set with a classmethod factory
(``NBeats.from_dataset(training, ...)``), and its tutorials tune them with ``Tuner.lr_find``. The
lab takes a function that returns a LightningModule as ``model.class_path``, so:

- :func:`make_datasets`: a deterministic synthetic ``TimeSeriesDataSet`` (noisy sines with
  trends, one per series, drawn from a private ``numpy`` generator seeded by ``seed``), built
  once per process and argument set; the DataModule and the model factory share it, since
  ``from_dataset`` needs the very training set the DataModule serves.
- :class:`ForecastingData`: its train (shuffled by the global torch RNG, which the lab seeds
  before every fit, so every trial sees the same order) and validation loaders.
- :func:`nbeats`: a small N-BEATS (a trend and a seasonality stack) from that data set.

Run it (needs ``pip install -e ".[forecasting]"``)::

    python scripts/run.py --config forecasting

or directly::

    L.Trainer(max_epochs=10).fit(nbeats(learning_rate=0.01), ForecastingData())
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

try:
    import pandas as pd
    from pytorch_forecasting import NBeats, TimeSeriesDataSet
except ImportError as err:  # the lab reports the first line, naming the class_path
    raise ImportError(
        f'the forecasting example needs pytorch-forecasting: pip install -e ".[forecasting]" '
        f"({err})"
    ) from None

CONTEXT = 16  # time steps the model reads (N-BEATS: a fixed encoder length)
HORIZON = 4  # time steps it forecasts


@lru_cache(maxsize=8)
def make_datasets(
    seed: int = 0, n_series: int = 24, length: int = 36
) -> tuple[TimeSeriesDataSet, TimeSeriesDataSet]:
    """The training and validation data sets of ``n_series`` synthetic series.

    Each series is ``level + slope * t + amplitude * sin(2 pi t / period + phase) + noise``, its
    parameters drawn from ``numpy.random.default_rng(seed)`` (the global RNGs are left alone). The
    last ``2 * HORIZON`` steps of every series are held out: validation forecasts windows whose
    first predicted step falls among them. Cached: every caller with the same arguments gets the
    same objects.

    Args:
        seed: Seed of the series.
        n_series: Number of series.
        length: Time steps per series.

    Returns:
        ``(training, validation)``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    frames = []
    for i in range(n_series):
        period = rng.uniform(5.0, 12.0)
        wave = rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        trend = rng.uniform(-3.0, 3.0) + rng.uniform(-0.05, 0.05) * t
        value = trend + wave + rng.normal(0.0, 0.2, length)
        frames.append(pd.DataFrame({"series": f"s{i}", "time_idx": t.astype(np.int64),
                                    "value": value.astype(np.float32)}))  # fmt: skip
    data = pd.concat(frames, ignore_index=True)
    data["series"] = data["series"].astype("category")
    cutoff = length - 2 * HORIZON - 1  # the last training step
    training = TimeSeriesDataSet(
        data[data.time_idx <= cutoff],
        time_idx="time_idx",
        target="value",
        group_ids=["series"],
        time_varying_unknown_reals=["value"],
        min_encoder_length=CONTEXT,
        max_encoder_length=CONTEXT,
        min_prediction_length=HORIZON,
        max_prediction_length=HORIZON,
    )
    validation = TimeSeriesDataSet.from_dataset(training, data, min_prediction_idx=cutoff + 1)
    return training, validation


class ForecastingData(L.LightningDataModule):
    """The synthetic series of :func:`make_datasets`, in batches.

    Args:
        batch_size: Training batch size (the last, partial batch is dropped).
        seed: Seed of the series.
        n_series: Number of series.
        length: Time steps per series.
    """

    def __init__(self, batch_size: int = 24, seed: int = 0, n_series: int = 24, length: int = 36):
        super().__init__()
        self.save_hyperparameters()
        self.training, self.validation = make_datasets(seed, n_series, length)

    def train_dataloader(self) -> DataLoader:
        """Shuffled windows; the order comes from the global torch RNG."""
        return self.training.to_dataloader(train=True, batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        """Every validation window, in a fixed order, in one batch."""
        return self.validation.to_dataloader(train=False, batch_size=len(self.validation))


def nbeats(
    learning_rate: float = 1e-2,
    widths: tuple[int, int] = (16, 64),
    num_blocks: tuple[int, int] = (2, 2),
    dropout: float = 0.1,
    weight_decay: float = 1e-3,
    seed: int = 0,
    n_series: int = 24,
    length: int = 36,
) -> NBeats:
    """A small interpretable N-BEATS (trend and seasonality stacks) for :class:`ForecastingData`.

    The learning rate is ``hparams.learning_rate``, where Lightning's finder and the lab find and
    set it; one Adam optimizer trains at it (named explicitly: older pytorch-forecasting releases
    defaulted to Ranger). The model's scheduler, ``ReduceLROnPlateau`` on ``val_loss``, is kept
    with a patience (and cooldown) of 1000 epochs: it never lowers the LR within a trial, so each
    trial trains at its own LR, as the lab's contract asks, and Lightning's finder swaps it for
    its own during the search anyway. ``reduce_on_plateau_patience=None`` would not do: the model
    then returns an empty scheduler dict, which Lightning refuses (``MisconfigurationException``).

    Args:
        learning_rate: Adam's learning rate.
        widths: Width of the fully connected layers of the trend and the seasonality stack.
        num_blocks: Blocks per stack.
        dropout: Dropout probability.
        weight_decay: Adam's weight decay.
        seed: Seed of the series (as the DataModule's: the model takes the data set's scales).
        n_series: Number of series (as the DataModule's).
        length: Time steps per series (as the DataModule's).

    Returns:
        The N-BEATS module, its weights freshly drawn from the global torch RNG.
    """
    training, _ = make_datasets(seed, n_series, length)
    with warnings.catch_warnings():  # Lightning's advice on pytorch-forecasting's own hparams
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        return NBeats.from_dataset(
            training,
            learning_rate=learning_rate,
            stack_types=["trend", "seasonality"],
            widths=list(widths),
            num_blocks=list(num_blocks),
            num_block_layers=[2, 2],
            expansion_coefficient_lengths=[3, 3],
            sharing=[True, True],
            dropout=dropout,
            weight_decay=weight_decay,
            optimizer="adam",
            reduce_on_plateau_patience=1000,
        )
