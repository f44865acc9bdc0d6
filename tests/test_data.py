import math

import pytest
import torch

from lr_lab.config import DataConfig
from lr_lab.data import DataError, RegressionDataModule, TensorBatches, load_csv


def batches(dm: RegressionDataModule, epochs: int = 2) -> list[torch.Tensor]:
    loader = dm.train_dataloader()
    return [x for _ in range(epochs) for x, _ in loader]


def test_same_seed_same_tensors_and_batch_order():
    cfg = DataConfig(n_samples=100, batch_size=16, function="sine", input_dim=3)
    a, b = RegressionDataModule(cfg, seed=7), RegressionDataModule(cfg, seed=7)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    for xa, xb in zip(batches(a), batches(b), strict=True):
        assert torch.equal(xa, xb)
    # A fresh loader from the same module replays the same epochs (every trial sees this order).
    for xa, xb in zip(batches(a), batches(a), strict=True):
        assert torch.equal(xa, xb)


def test_other_seed_other_data_and_epochs_reshuffle():
    cfg = DataConfig(n_samples=100, batch_size=16)
    a, c = RegressionDataModule(cfg, seed=0), RegressionDataModule(cfg, seed=1)
    assert not torch.equal(a.x_train, c.x_train)
    loader = a.train_dataloader()
    first, second = [torch.cat([x for x, _ in loader]) for _ in range(2)]
    assert not torch.equal(first, second)  # a new order each epoch
    # ...but each epoch is a permutation of the whole training set.
    assert torch.equal(first.sort(0).values, a.x_train.sort(0).values)


def test_split_sizes_and_no_validation():
    dm = RegressionDataModule(DataConfig(n_samples=100, val_fraction=0.25), seed=0)
    assert (len(dm.x_train), len(dm.x_val)) == (75, 25)
    dm0 = RegressionDataModule(DataConfig(n_samples=100, val_fraction=0.0), seed=0)
    assert len(dm0.x_train) == 100 and not dm0.has_val


@pytest.mark.parametrize("function", ["linear", "sine", "quadratic"])
def test_synthetic_functions(function):
    cfg = DataConfig(n_samples=2000, noise_std=0.0, function=function, val_fraction=0)
    dm = RegressionDataModule(cfg, seed=0)
    x, y = dm.x_train, dm.y_train
    expected = {
        "linear": 2 * x.sum(1, keepdim=True) + 1,
        "sine": torch.sin(math.pi * x.mean(1, keepdim=True)),
        "quadratic": (x**2).mean(1, keepdim=True),
    }[function]
    assert torch.allclose(y, expected)
    noisy = RegressionDataModule(DataConfig(n_samples=2000, noise_std=0.5, val_fraction=0), 0)
    residual = noisy.y_train - (2 * noisy.x_train.sum(1, keepdim=True) + 1)
    assert abs(residual.std().item() - 0.5) < 0.05


def test_batches_are_slices_of_tensors_with_last_partial_batch():
    x = torch.arange(10.0).unsqueeze(1)
    loader = TensorBatches(x, x, batch_size=4, shuffle=False)
    assert len(loader) == 3
    assert [len(b) for b, _ in loader] == [4, 4, 2]


def test_csv_loading(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,target\n1,2,3\n4,5,6\n7,8,9\n")
    x, y = load_csv(path)
    assert x.tolist() == [[1, 2], [4, 5], [7, 8]] and y.tolist() == [[3], [6], [9]]
    dm = RegressionDataModule(DataConfig(csv_path=str(path), val_fraction=0, batch_size=2), 0)
    assert dm.input_dim == 2 and len(dm.x_train) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("", "empty"),
        ("a,b\n", "no data rows"),
        ("a,b\n1,x\n", "not numeric"),
        ("target\n1\n2\n", "at least 2 columns"),
        ("a,b,c\n1,2\n", "columns"),
        ("a,b\n1,nan\n", "non-finite"),
    ],
)
def test_csv_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        load_csv(path)
    assert "bad.csv" in str(err.value) and "\n" not in str(err.value)
