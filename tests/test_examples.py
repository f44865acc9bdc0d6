"""The user-style examples: each trains, is deterministic under a seed, and trains at module.lr."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import pytest
import torch

pytest.importorskip("sklearn")

from lr_lab.examples.sequence import RecurrentModel, SequenceDataModule  # noqa: E402
from lr_lab.examples.tabular import SHAPES, MLPClassifier, TabularDataModule  # noqa: E402
from lr_lab.examples.transformer import OrderDataModule, TinyTransformer  # noqa: E402
from lr_lab.examples.vision import DigitsCNN, DigitsImageDataModule  # noqa: E402

LR_KEYS = ("lr", "initial_lr", "max_lr")


@dataclass
class Case:
    model: Callable[[float], L.LightningModule]
    data: Callable[[], L.LightningDataModule]
    lr: float
    learns_in_2_epochs: bool = True  # val_loss falls below its value at initialization


def tabular(dataset: str, **kwargs) -> Callable[[float], MLPClassifier]:
    features, classes = SHAPES[dataset]
    return lambda lr: MLPClassifier(features, classes, lr=lr, **kwargs)


CASES = {
    "wine-mlp": Case(tabular("wine"), lambda: TabularDataModule("wine"), 0.03),
    "iris-logistic": Case(tabular("iris", hidden=0), lambda: TabularDataModule("iris"), 0.1),
    "moons-mlp-cosine": Case(
        tabular("moons", schedule="cosine"), lambda: TabularDataModule("moons", n_samples=300), 0.1
    ),
    "classification-adamw": Case(
        tabular("classification", optimizer="adamw", depth=2),
        lambda: TabularDataModule("classification", n_samples=300),
        0.01,
    ),
    "cnn": Case(lambda lr: DigitsCNN(lr=lr), lambda: DigitsImageDataModule(n_samples=400), 0.03),
    "cnn-batchnorm": Case(
        lambda lr: DigitsCNN(batchnorm=True, optimizer="adam", lr=lr),
        lambda: DigitsImageDataModule(n_samples=400),
        0.01,
    ),
    "parity-gru": Case(
        lambda lr: RecurrentModel("parity", "gru", lr=lr),
        lambda: SequenceDataModule("parity", n_samples=300),
        0.03,
        learns_in_2_epochs=False,  # parity stays at chance for a while
    ),
    "sine-lstm": Case(
        lambda lr: RecurrentModel("sine", "lstm", lr=lr),
        lambda: SequenceDataModule("sine", n_samples=300),
        0.01,
    ),
    "transformer-onecycle": Case(
        lambda lr: TinyTransformer(schedule="onecycle", lr=lr),
        lambda: OrderDataModule(n_samples=300),
        3e-3,
        learns_in_2_epochs=False,
    ),
    "transformer-warmup-cosine": Case(
        lambda lr: TinyTransformer(schedule="warmup_cosine", num_layers=2, lr=lr),
        lambda: OrderDataModule(n_samples=300),
        3e-3,
        learns_in_2_epochs=False,
    ),
    "transformer-constant": Case(
        lambda lr: TinyTransformer(schedule="none", lr=lr),
        lambda: OrderDataModule(n_samples=300),
        3e-3,
        learns_in_2_epochs=False,
    ),
}


class OptimizerProbe(L.Callback):
    """Records the optimizers' param groups when training starts and when it ends."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = [dict(g) for opt in trainer.optimizers for g in opt.param_groups]
        self.n_optimizers = len(trainer.optimizers)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end = [dict(g) for opt in trainer.optimizers for g in opt.param_groups]


def trainer(callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        callbacks=callbacks,
    )


def fit(case: Case, probe: OptimizerProbe | None = None) -> tuple[float, L.LightningModule]:
    L.seed_everything(0, verbose=False)
    module = case.model(case.lr)
    trainer([probe] if probe else None).fit(module, case.data())
    return float(trainer_metric(module)), module


def trainer_metric(module: L.LightningModule) -> float:
    return module.trainer.callback_metrics["val_loss"].item()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(CASES))
def test_trains_deterministically_at_module_lr(name: str):
    case = CASES[name]
    L.seed_everything(0, verbose=False)
    fresh = case.model(case.lr)
    keys = set(fresh.state_dict())
    initial = trainer().validate(fresh, case.data(), verbose=False)[0]["val_loss"]

    probe = OptimizerProbe()
    val_loss, module = fit(case, probe)
    assert math.isfinite(val_loss)
    if case.learns_in_2_epochs:
        assert val_loss < initial, (val_loss, initial)
    metrics = module.trainer.callback_metrics
    assert ("val_acc" in metrics) == (getattr(module.hparams, "task", "") != "sine")

    # The contract: one optimizer, built at module.lr; every layer made in __init__.
    assert module.lr == case.lr == module.hparams.lr
    assert probe.n_optimizers == 1
    seen = [g[k] for g in probe.start for k in LR_KEYS if k in g]
    assert any(math.isclose(v, module.lr, rel_tol=1e-9) for v in seen), seen
    assert set(module.state_dict()) == keys
    if getattr(module.hparams, "schedule", "none") != "none":  # decays to (nearly) 0 by the end
        assert probe.end[0]["lr"] < 0.05 * module.lr

    # The same seed before a fit gives the same result.
    again, _ = fit(case)
    assert again == val_loss


def test_lr_attribute_is_read_when_the_fit_starts():
    """The lab sets ``module.lr`` after ``__init__``; configure_optimizers must use the new value."""
    module = MLPClassifier(lr=1e-3, schedule="cosine")
    module.lr = 0.25
    probe = OptimizerProbe()
    L.seed_everything(0, verbose=False)
    trainer([probe]).fit(module, TabularDataModule("wine"))
    assert probe.start[0]["initial_lr"] == 0.25
    assert probe.start[0]["lr"] == 0.25


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: TabularDataModule("moons", n_samples=200, seed=seed),
        lambda seed: TabularDataModule("wine", seed=seed),
        lambda seed: DigitsImageDataModule(n_samples=200, seed=seed),
        lambda seed: SequenceDataModule("sine", n_samples=200, seed=seed),
        lambda seed: SequenceDataModule("parity", n_samples=200, seed=seed),
        lambda seed: OrderDataModule(n_samples=200, seed=seed),
    ],
    ids=["moons", "wine", "digits", "sine", "parity", "order"],
)
def test_datamodule_is_seeded_privately(make):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dm = make(0)
    dm.setup("fit")
    assert torch.equal(torch.rand(3), expected)  # generating the data left the global RNG alone

    first = dm.train_set.tensors[0]
    dm.setup("validate")  # a second call keeps the first data
    assert dm.train_set.tensors[0] is first
    n_train, n_val = len(dm.train_set), len(dm.val_set)
    assert 0.15 < n_val / (n_train + n_val) < 0.3
    assert len(list(dm.val_dataloader())) == 1

    same, other = make(0), make(1)
    same.setup("fit")
    other.setup("fit")
    assert torch.equal(same.train_set.tensors[0], first)
    assert not torch.equal(other.val_set.tensors[0], dm.val_set.tensors[0])


def test_train_order_follows_the_global_seed():
    dm = TabularDataModule("iris")
    dm.setup("fit")
    orders = []
    for seed in (0, 0, 1):
        L.seed_everything(seed, verbose=False)
        orders.append(torch.cat([y for _, y in dm.train_dataloader()]))
    assert torch.equal(orders[0], orders[1])
    assert not torch.equal(orders[0], orders[2])


def test_logistic_regression_is_one_linear_layer():
    module = MLPClassifier(in_features=4, num_classes=3, hidden=0)
    assert [type(m).__name__ for m in module.net] == ["Linear"]
    assert sum(p.numel() for p in module.parameters()) == 4 * 3 + 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLPClassifier(optimizer="rmsprop"),
        lambda: MLPClassifier(schedule="step"),
        lambda: TabularDataModule("mnist"),
        lambda: DigitsCNN(optimizer="lbfgs"),
        lambda: RecurrentModel(cell="rnn"),
        lambda: SequenceDataModule(task="copy"),
        lambda: TinyTransformer(schedule="linear"),
        lambda: OrderDataModule(val_fraction=1.5),
    ],
)
def test_bad_choices_are_refused(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("name", ["tabular", "vision", "sequence", "transformer"])
def test_import_builds_no_data(name: str, monkeypatch: pytest.MonkeyPatch):
    """Each module runs its top level with scikit-learn unimportable: data is made only later."""
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now raises ImportError
    spec = importlib.util.find_spec(f"lr_lab.examples.{name}")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # a fresh copy, not registered
