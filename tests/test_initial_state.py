import pytest
import torch

from lr_lab.training.initial_state import (
    InitStateError,
    load_initial_state,
    read_initial_state,
    save_initial_state,
    weights_sha256,
)
from lr_lab.training.model import RegressionModule


def test_save_load_roundtrip_and_hash(tmp_path):
    torch.manual_seed(0)
    module = RegressionModule(input_dim=2, hidden_dims=[8])
    path = tmp_path / "init.ckpt"
    sha = save_initial_state(module, path, {"input_dim": 2}, seed=0)
    ckpt = torch.load(path, weights_only=True)  # loadable without pickled code
    assert set(ckpt["state_dict"]) == set(module.state_dict())
    other = RegressionModule(input_dim=2, hidden_dims=[8])
    assert weights_sha256(other.state_dict()) != sha
    assert load_initial_state(path, other) == sha
    for name, tensor in module.state_dict().items():
        assert torch.equal(other.state_dict()[name], tensor)
    with pytest.raises(FileExistsError):  # never overwritten
        save_initial_state(module, path, {}, seed=0)


def test_wrong_architecture_names_the_mismatch(tmp_path):
    path = tmp_path / "init.ckpt"
    save_initial_state(RegressionModule(input_dim=2, hidden_dims=[8]), path, {}, 0)
    with pytest.raises(InitStateError, match=r"another architecture .*\[8, 2\].*\[8, 1\]"):
        load_initial_state(path, RegressionModule(input_dim=1, hidden_dims=[8]))
    with pytest.raises(InitStateError, match="another architecture"):
        load_initial_state(path, RegressionModule(input_dim=2, hidden_dims=[8, 8]))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "not found"),
        (b"", "not a readable checkpoint"),
        (b"this is not a checkpoint", "not a readable checkpoint"),
        ("truncated", "not a readable checkpoint"),
        ({"weights": 1}, "no 'state_dict'"),
    ],
)
def test_unusable_checkpoints(tmp_path, payload, message):
    path = tmp_path / "init.ckpt"
    if payload == "truncated":
        save_initial_state(RegressionModule(), path, {}, 0)
        path.write_bytes(path.read_bytes()[:200])
    elif isinstance(payload, bytes):
        path.write_bytes(payload)
    elif payload is not None:
        torch.save(payload, path)
    with pytest.raises(InitStateError, match=message) as err:
        read_initial_state(path)
    assert str(path) in str(err.value)
