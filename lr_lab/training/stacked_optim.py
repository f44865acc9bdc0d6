"""An optimizer over stacked model copies: one learning rate per copy, and freezing.

The lab trains K copies of a model at once, one per learning rate, with every parameter stacked
along a leading dim of size K (``torch.func.stack_module_state``, forward through
``torch.func.vmap(functional_call)``). Built-in torch optimizers take one learning rate per
parameter group, and a stacked tensor is a single parameter, so they cannot give each copy its
own LR. :class:`StackedOptimizer` does SGD (with momentum and weight decay) or Adam over the whole
stack, with ``lrs[k]`` for copy ``k``; per copy, the math is that of ``torch.optim.SGD`` /
``torch.optim.Adam`` on an unstacked copy. Copies can be frozen (e.g. a diverged trial): from
then on their parameters and optimizer state never change, even if their gradients are NaN/inf,
and the other copies step exactly as they would have without them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

NAMES = ("sgd", "adam")


def _per_copy(values: Tensor, param: Tensor) -> Tensor:
    """View a (K,) tensor as (K, 1, 1, ...), to broadcast against ``param`` of shape (K, ...)."""
    return values.view(-1, *([1] * (param.dim() - 1)))


class StackedOptimizer(torch.optim.Optimizer):
    """SGD or Adam over parameters stacked along a leading dim of size K, with per-copy LRs.

    Per copy ``k`` this does what ``torch.optim.SGD(lr=lrs[k], momentum, weight_decay)`` (no
    dampening, no Nesterov) or ``torch.optim.Adam(lr=lrs[k], betas, eps, weight_decay)`` (no
    AMSGrad) does to an unstacked copy, up to float rounding. There is a single param group;
    its ``lrs`` and ``active`` (K,) tensors live in it, so ``state_dict`` saves them.

    Args:
        params: Tensors, each of shape (K, ...).
        lrs: Learning rates, shape (K,).
        name: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty added to the gradient, as in torch's SGD and Adam.
        betas: Adam's moment decay rates.
        eps: Adam's denominator term.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lrs: Tensor,
        name: str = "sgd",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if name not in NAMES:
            raise ValueError(f"name must be one of {NAMES}, got {name!r}")
        params = list(params)
        if not params or lrs.dim() != 1:
            raise ValueError("need at least one param, and lrs of shape (K,)")
        if any(p.dim() == 0 or p.shape[0] != len(lrs) for p in params):
            raise ValueError(f"every param must have shape (K, ...) with K = len(lrs) = {len(lrs)}")
        ref = params[0]
        defaults = {
            "lrs": lrs.detach().to(device=ref.device, dtype=ref.dtype).clone(),
            "active": torch.ones(len(lrs), dtype=torch.bool, device=ref.device),
            "name": name,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "betas": tuple(betas),
            "eps": eps,
        }
        super().__init__(params, defaults)

    @property
    def lrs(self) -> Tensor:
        """The per-copy learning rates, shape (K,)."""
        return self.param_groups[0]["lrs"]

    @property
    def active(self) -> Tensor:
        """Boolean mask, shape (K,): False for frozen copies."""
        return self.param_groups[0]["active"]

    def freeze(self, mask: Tensor) -> None:
        """Freeze the copies where ``mask`` is True: they are never updated again.

        Args:
            mask: Boolean tensor of shape (K,).
        """
        self.active.masked_fill_(mask.to(self.active.device, torch.bool), False)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every active copy once from the parameters' ``.grad``.

        Args:
            closure: Optional callable that recomputes the gradients and returns the loss.

        Returns:
            The closure's loss, or None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            active = _per_copy(group["active"], p)
            neg_lr = _per_copy(-group["lrs"], p)
            grad = p.grad
            if group["weight_decay"] != 0:
                grad = grad.add(p, alpha=group["weight_decay"])
            state = self.state[p]
            if group["name"] == "sgd":
                if group["momentum"] != 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = torch.where(active, grad, 0.0)
                    else:
                        buf.copy_(torch.where(active, buf * group["momentum"] + grad, buf))
                    grad = buf
                update = torch.addcmul(p, neg_lr, grad)
            else:
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                step = state["step"].item()
                exp_avg.copy_(torch.where(active, exp_avg.lerp(grad, 1 - beta1), exp_avg))
                new_sq = exp_avg_sq.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg_sq.copy_(torch.where(active, new_sq, exp_avg_sq))
                denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
                update = p + neg_lr / (1 - beta1**step) * (exp_avg / denom)
            p.copy_(torch.where(active, update, p))
        return loss
