from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lr_lab.training.stacked_optim import StackedOptimizer

LRS = [1e-3, 1e-2, 1e-1]
K = len(LRS)
STEPS = 20

CASES = {
    "sgd": dict(name="sgd"),
    "sgd_momentum": dict(name="sgd", momentum=0.9),
    "sgd_momentum_wd": dict(name="sgd", momentum=0.9, weight_decay=1e-2),
    "adam": dict(name="adam"),
    "adam_wd": dict(name="adam", weight_decay=1e-2, betas=(0.8, 0.99), eps=1e-6),
}


def make_models() -> list[nn.Module]:
    models = []
    for k in range(K):
        torch.manual_seed(100 + k)  # a different init per copy
        models.append(nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1)))
    return models


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [
        (torch.randn(16, 2, generator=gen), torch.randn(16, 1, generator=gen)) for _ in range(n)
    ]


def reference_optimizer(params, lr: float, name: str, **kwargs) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **kwargs)
    return torch.optim.Adam(params, lr=lr, **kwargs)


class Stack:
    """K stacked copies of the models, trained with StackedOptimizer."""

    def __init__(self, models: list[nn.Module], **opt_kwargs) -> None:
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.opt = StackedOptimizer(self.params.values(), torch.tensor(LRS), **opt_kwargs)

    def backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        def forward(params, buffers, x):
            return functional_call(self.base, (params, buffers), (x,))

        out = vmap(forward, in_dims=(0, 0, None))(self.params, self.buffers, x)
        loss = ((out - y) ** 2).mean(dim=(1, 2)).sum()  # summed over copies
        self.opt.zero_grad()
        loss.backward()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.backward(x, y)
        self.opt.step()

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self.params.items()}


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_optimizers_per_copy(case):
    kwargs = dict(CASES[case])
    name = kwargs.pop("name")
    models = make_models()
    stack = Stack(models, name=name, **kwargs)
    refs = [copy.deepcopy(m) for m in models]
    ref_opts = [reference_optimizer(m.parameters(), lr, name, **kwargs) for m, lr in zip(refs, LRS)]
    for x, y in batches(STEPS):
        stack.train_step(x, y)
        for model, opt in zip(refs, ref_opts):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        for k, model in enumerate(refs):
            for pname, p in model.named_parameters():
                torch.testing.assert_close(stack.params[pname][k], p, rtol=1e-5, atol=1e-6)
    # The largest LR must actually have moved the parameters.
    assert not torch.equal(stack.params["0.weight"][2], models[2][0].weight)


@pytest.mark.parametrize("case", CASES)
def test_freeze_stops_a_copy_and_leaves_the_others_bit_for_bit(case):
    models = make_models()
    free, frozen = Stack(models, **CASES[case]), Stack(models, **CASES[case])
    for i, (x, y) in enumerate(batches(STEPS)):
        free.train_step(x, y)
        frozen.backward(x, y)
        if i >= 5:
            for p in frozen.params.values():
                p.grad[1] = float("nan")
        frozen.opt.step()
        if i == 4:  # after step 5
            frozen.opt.freeze(torch.tensor([False, True, False]))
            at_freeze = frozen.snapshot()
            state_at_freeze = copy.deepcopy(frozen.opt.state_dict()["state"])
    assert frozen.opt.active.tolist() == [True, False, True]
    for pname, p in frozen.params.items():
        assert torch.equal(p[1], at_freeze[pname][1])
        assert torch.equal(p[[0, 2]], free.params[pname][[0, 2]])
    for i, state in frozen.opt.state_dict()["state"].items():
        for key, value in state.items():
            if key != "step":
                assert torch.equal(value[1], state_at_freeze[i][key][1]), key


@pytest.mark.parametrize("case", CASES)
def test_state_dict_round_trip(case):
    data = batches(10)
    first = Stack(make_models(), **CASES[case])
    for x, y in data[:5]:
        first.train_step(x, y)
    first.opt.freeze(torch.tensor([True, False, False]))
    buffer = io.BytesIO()
    torch.save(first.opt.state_dict(), buffer)
    buffer.seek(0)

    second = Stack(make_models(), **CASES[case])
    for name, p in second.params.items():
        p.data.copy_(first.params[name])
    second.opt.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(second.opt.active, first.opt.active)
    assert torch.equal(second.opt.lrs, first.opt.lrs)
    for x, y in data[5:]:
        first.train_step(x, y)
        second.train_step(x, y)
    for name, p in first.params.items():
        assert torch.equal(second.params[name], p)


def test_closure_and_validation():
    stack = Stack(make_models(), name="adam")
    x, y = batches(1)[0]

    def closure():
        stack.backward(x, y)
        return 1.5

    before = stack.snapshot()
    assert stack.opt.step(closure) == 1.5
    assert not torch.equal(stack.params["2.bias"], before["2.bias"])
    with pytest.raises(ValueError, match="name"):
        StackedOptimizer(stack.params.values(), torch.tensor(LRS), name="rmsprop")
    with pytest.raises(ValueError, match="K"):
        StackedOptimizer(stack.params.values(), torch.tensor(LRS[:2]))
