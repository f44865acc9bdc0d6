import math
from dataclasses import asdict

import pytest
import torch

from lr_lab.config.schema import RegressionDataArgs
from lr_lab.training.data import (
    DataError,
    RegressionDataModule,
    TensorBatches,
    file_sha256,
    load_csv,
    make_synthetic,
)
from lr_lab.training.problem import csv_input_dim


def batches(dm: RegressionDataModule, epochs: int = 2) -> list[torch.Tensor]:
    loader = dm.train_dataloader()
    return [x for _ in range(epochs) for x, _ in loader]


def test_same_seed_same_tensors_and_batch_order():
    cfg = RegressionDataArgs(n_samples=100, batch_size=16, function="sine", input_dim=3)
    a, b = RegressionDataModule(**asdict(cfg), seed=7), RegressionDataModule(**asdict(cfg), seed=7)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    for xa, xb in zip(batches(a), batches(b), strict=True):
        assert torch.equal(xa, xb)
    # A fresh loader from the same module replays the same epochs (every trial sees this order).
    for xa, xb in zip(batches(a), batches(a), strict=True):
        assert torch.equal(xa, xb)


def test_other_seed_other_data_and_epochs_reshuffle():
    cfg = RegressionDataArgs(n_samples=100, batch_size=16)
    a, c = RegressionDataModule(**asdict(cfg), seed=0), RegressionDataModule(**asdict(cfg), seed=1)
    assert not torch.equal(a.x_train, c.x_train)
    loader = a.train_dataloader()
    first, second = [torch.cat([x for x, _ in loader]) for _ in range(2)]
    assert not torch.equal(first, second)  # a new order each epoch
    # ...but each epoch is a permutation of the whole training set.
    assert torch.equal(first.sort(0).values, a.x_train.sort(0).values)


def test_split_sizes_and_no_validation():
    dm = RegressionDataModule(n_samples=100, val_fraction=0.25, seed=0)
    assert (len(dm.x_train), len(dm.x_val)) == (75, 25)
    dm0 = RegressionDataModule(n_samples=100, val_fraction=0.0, seed=0)
    assert len(dm0.x_train) == 100 and not dm0.has_val


def synthetic(seed: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    return make_synthetic(RegressionDataArgs(**kwargs), torch.Generator().manual_seed(seed))


def test_make_synthetic_shapes_and_uniform_inputs():
    x, y = synthetic(n_samples=12_000, input_dim=3)
    assert x.shape == (12_000, 3) and y.shape == (12_000, 1)
    assert x.dtype == y.dtype == torch.float32
    assert x.min() >= -2 and x.max() <= 2
    # U(-2, 2): mean 0, variance 4^2 / 12 = 4/3; the standard error of each is ~0.006.
    assert x.mean().item() == pytest.approx(0.0, abs=0.03)
    assert x.var().item() == pytest.approx(4 / 3, abs=0.03)
    # Every part of [-2, 2] is drawn: each quarter holds a quarter of the samples.
    quarters = torch.histc(x, bins=4, min=-2, max=2) / x.numel()
    assert torch.allclose(quarters, torch.full((4,), 0.25), atol=0.01)


def test_make_synthetic_depends_only_on_the_generator():
    a, b, c = synthetic(3, n_samples=50), synthetic(3, n_samples=50), synthetic(4, n_samples=50)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def near(x: torch.Tensor, y: torch.Tensor, at: float) -> tuple[float, float]:
    """The sample whose (mean) input is nearest ``at``: its distance and its target."""
    i = int((x.mean(1) - at).abs().argmin())
    return abs(x[i].mean().item() - at), y[i, 0].item()


# Noise-free values at hand-computed inputs (README: y = 2 sum(x) + 1, sin(pi mean(x)), mean(x^2)),
# with the slope of each function bounding the error of the nearest drawn sample.
KNOWN_POINTS = {
    "linear": (2.0, [(-2.0, -3.0), (-0.5, 0.0), (0.0, 1.0), (1.5, 4.0)]),
    "sine": (math.pi, [(-0.5, -1.0), (0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (1.5, -1.0)]),
    "quadratic": (4.0, [(-2.0, 4.0), (-1.0, 1.0), (0.0, 0.0), (0.5, 0.25), (2.0, 4.0)]),
}


@pytest.mark.parametrize("function", list(KNOWN_POINTS))
def test_synthetic_functions_at_known_points(function):
    x, y = synthetic(n_samples=4000, noise_std=0.0, function=function)
    slope, points = KNOWN_POINTS[function]
    for at, expected in points:
        dist, value = near(x, y, at)
        assert dist < 0.01
        assert value == pytest.approx(expected, abs=slope * dist + 1e-5), (at, value)


def test_linear_sums_the_inputs():
    # Least squares recovers y = 2 x1 + 2 x2 + 1 exactly from noise-free samples.
    x, y = synthetic(n_samples=500, noise_std=0.0, input_dim=2)
    design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    coef = torch.linalg.lstsq(design, y.double()).solution.flatten()
    assert torch.allclose(coef, torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64), atol=1e-5)


def test_sine_and_quadratic_depend_on_the_mean_of_the_inputs():
    # With 2 inputs, samples with mean(x) near 0.5 have sin(pi/2) = 1 whatever their spread.
    x, y = synthetic(n_samples=20_000, noise_std=0.0, function="sine", input_dim=2)
    close = (x.mean(1) - 0.5).abs() < 0.005
    assert close.sum() > 20 and torch.allclose(y[close], torch.ones(1), atol=1e-3)
    # Quadratic is the mean of the squares, not the square of the mean: inputs near (2, -2)
    # average to 0 yet give 4; its largest values lie at the corners, its smallest near 0.
    x, y = synthetic(n_samples=20_000, noise_std=0.0, function="quadratic", input_dim=2)
    assert y.min() >= 0 and y.max() <= 4
    balanced = x.mean(1).abs() < 0.02
    assert balanced.sum() > 20 and y[balanced].max() > 3.5
    top, bottom = int(y.argmax()), int(y.argmin())
    assert (x[top].abs() > 1.9).all() and y[top] > 3.8
    assert (x[bottom].abs() < 0.1).all() and y[bottom] < 0.01


def test_noise_is_gaussian_with_the_configured_std():
    x, y = synthetic(n_samples=20_000, noise_std=0.5)
    design = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    fit = torch.linalg.lstsq(design, y.double()).solution.flatten()
    assert fit[0].item() == pytest.approx(2.0, abs=0.02)  # the noise does not bias the line
    assert fit[1].item() == pytest.approx(1.0, abs=0.02)
    residual = (y.double() - design @ fit[:, None]).flatten()
    assert residual.std().item() == pytest.approx(0.5, abs=0.01)
    assert (residual.abs() < 0.5).double().mean().item() == pytest.approx(0.6827, abs=0.015)
    assert (residual.abs() < 1.0).double().mean().item() == pytest.approx(0.9545, abs=0.01)


def test_unknown_function_is_a_data_error():
    with pytest.raises(DataError, match="data.function"):
        synthetic(function="cubic")


def test_input_dim_without_making_the_data(tmp_path):
    from tests.conftest import experiment

    assert experiment({"data.input_dim": 5}, base={}).problem.builtin_model.input_dim == 5
    path = tmp_path / "header_only.csv"
    path.write_text("a,b,c,target\n")  # no rows: only the header is read
    assert csv_input_dim(str(path)) == 3


def test_file_sha256_known_value(tmp_path):
    path = tmp_path / "abc.txt"
    path.write_bytes(b"abc")  # the FIPS 180-2 test vector
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_load_csv_sees_a_changed_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,target\n1,2\n")
    x, y = load_csv(path)
    assert (x.tolist(), y.tolist()) == ([[1.0]], [[2.0]]) and x.dtype == torch.float32
    path.write_text("a,target\n3,4\n5,6\n")
    assert load_csv(path)[1].tolist() == [[4.0], [6.0]]


def test_batches_are_slices_of_tensors_with_last_partial_batch():
    x = torch.arange(10.0).unsqueeze(1)
    loader = TensorBatches(x, x, batch_size=4, shuffle=False)
    assert len(loader) == 3
    assert [b.flatten().tolist() for b, _ in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_steps_per_call_groups_the_same_batches():
    x = torch.arange(10.0).unsqueeze(1)
    plain = TensorBatches(x, -x, batch_size=2, shuffle=True, seed=5)
    grouped = TensorBatches(x, -x, batch_size=2, shuffle=True, seed=5, steps_per_call=2)
    assert len(grouped) == 3  # 5 batches in calls of 2, 2 and 1
    groups = list(grouped)
    assert [len(g) for g in groups] == [2, 2, 1]
    flat = [b for g in groups for b in g]
    for (xa, ya), (xb, yb) in zip(list(plain), flat, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ya, -xa)


def test_csv_loading(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,target\n1,2,3\n4,5,6\n7,8,9\n")
    x, y = load_csv(path)
    assert x.tolist() == [[1, 2], [4, 5], [7, 8]] and y.tolist() == [[3], [6], [9]]
    dm = RegressionDataModule(csv_path=str(path), val_fraction=0, batch_size=2, seed=0)
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
