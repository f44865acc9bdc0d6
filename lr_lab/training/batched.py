"""Batched trials: all learning rates of one seed trained at once, as stacked copies of one net.

Every copy is loaded from the same ``init.ckpt`` and sees the same mini-batches; one vmapped
forward/backward serves all of them and :class:`~lr_lab.training.stacked_optim.StackedOptimizer`
gives each copy its own learning rate. A copy that diverges is frozen at that step; the others go
on. Each trial still gets its own TensorBoard run and ``TrialResult``, with the same
numbers a sequential trial measures (``tests/test_batched.py``), only sooner.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from lr_lab.analysis.records import TrialResult
from lr_lab.config.memory import mlp_parameters
from lr_lab.training.chunked import STEPS_PER_CALL, ChunkedTraining
from lr_lab.training.initial_state import load_initial_state
from lr_lab.training.model import RegressionModule, SimpleRegressionNet
from lr_lab.training.problem import Problem, TrialSpec
from lr_lab.training.recorder import LossRecorder
from lr_lab.training.runner import fit_and_collect, log_stride
from lr_lab.training.stacked_optim import StackedOptimizer
from lr_lab.training.trainer import apply_threads

# Automatic batching: at least this many trials, and nets up to this many parameters.
AUTO_MIN_TRIALS = 4
AUTO_MAX_PARAMS = 100_000


def should_batch(batched: bool | None, problem: Problem, n_trials: int) -> bool:
    """Whether to train ``n_trials`` trials stacked: ``trials.batched``, or automatic if null.

    Only the built-in model on the built-in data can be stacked; a user's module always trains
    sequentially.
    """
    m = problem.builtin_model
    if m is None or problem.builtin_data is None:
        return False
    if batched is not None:
        return batched and n_trials > 1
    n_params = mlp_parameters(m.input_dim, m.hidden_dims)
    return n_trials >= AUTO_MIN_TRIALS and n_params <= AUTO_MAX_PARAMS


class StackedTrialModule(ChunkedTraining, L.LightningModule):
    """K copies of :class:`SimpleRegressionNet`, one per learning rate, trained as one module.

    Args:
        lrs: One learning rate per copy.
        input_dim: Number of input features.
        hidden_dims: Hidden layer widths.
        optimizer: ``"sgd"`` or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        divergence_factor: See :class:`~lr_lab.chunked.ChunkedTraining`.
    """

    def __init__(
        self,
        lrs: list[float],
        input_dim: int = 1,
        hidden_dims: list[int] | tuple[int, ...] = (32, 32),
        optimizer: str = "sgd",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        divergence_factor: float = 1000.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        template = SimpleRegressionNet(input_dim, list(hidden_dims))
        self._names = [name for name, _ in template.named_parameters()]
        # Only the structure is needed for functional_call; kept off the module's registry so
        # Lightning never moves or checkpoints it.
        object.__setattr__(self, "_template", template.to("meta"))
        self.params = nn.ParameterList(
            nn.Parameter(torch.zeros(len(lrs), *p.shape)) for p in template.parameters()
        )
        self.register_buffer("lrs", torch.tensor(lrs, dtype=torch.float32))
        self._init_guard(len(lrs), divergence_factor)

    def load_initial(self, net_state: dict[str, Tensor]) -> None:
        """Copy one net's weights (``SimpleRegressionNet`` names) into every copy."""
        with torch.no_grad():
            for name, param in zip(self._names, self.params):
                param.copy_(net_state[name].unsqueeze(0).expand_as(param))

    def copy_state(self, k: int) -> dict[str, Tensor]:
        """Copy ``k``'s weights, as a ``SimpleRegressionNet`` state dict."""
        return {name: param[k].detach() for name, param in zip(self._names, self.params)}

    def forward(self, x: Tensor) -> Tensor:
        """Predictions of every copy, shape (K, batch, 1)."""
        params = dict(zip(self._names, self.params))

        def one(p: dict[str, Tensor], inputs: Tensor) -> Tensor:
            return functional_call(self._template, p, (inputs,))

        return vmap(one, in_dims=(0, None))(params, x)

    def _losses(self, x: Tensor, y: Tensor) -> Tensor:
        return ((self(x) - y) ** 2).mean(dim=(1, 2))  # MSE per copy, (K,)

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        optimizer = self.optimizers()
        losses = self._losses(x, y)
        optimizer.zero_grad(set_to_none=True)
        # Copies are independent: the gradient of the sum w.r.t. copy k is that of loss k.
        self.manual_backward(losses.sum())
        optimizer.step()
        return losses

    def _on_diverged(self, mask: Tensor) -> None:
        self.optimizers().optimizer.freeze(mask)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Validation loss of every copy on one chunk, shape (K,)."""
        return self._losses(*batch)

    def configure_optimizers(self) -> StackedOptimizer:
        """SGD or Adam over the stack, copy k at ``lrs[k]``."""
        hp = self.hparams
        return StackedOptimizer(
            self.params,
            self.lrs,
            name=hp.optimizer,
            momentum=hp.momentum,
            weight_decay=hp.weight_decay,
        )


def run_batched(specs: list[TrialSpec]) -> list[TrialResult]:
    """Train every spec at once (all of one seed, one config, one ``init.ckpt``).

    Args:
        specs: The trials; they differ only in learning rate, name, role and rules.

    Returns:
        One result per spec, in order, as :func:`~lr_lab.training.runner.run_trial` would return it.
    """
    first = specs[0]
    problem, fit = first.problem, first.fit
    datamodule = problem.make_data(first.seed, steps_per_call=STEPS_PER_CALL)
    kwargs = asdict(problem.builtin_model)
    reference = RegressionModule(lr=first.lr, **kwargs)
    init_sha = load_initial_state(Path(first.init_path), reference)
    module = StackedTrialModule(
        [s.lr for s in specs], divergence_factor=fit.divergence_factor, **kwargs
    )
    module.load_initial(reference.net.state_dict())
    apply_threads(first.threads)
    run_dirs = [str(s.run_dir) for s in specs]
    stride = log_stride(fit, datamodule.steps_per_epoch)
    recorder = LossRecorder(run_dirs, module.guard, fit.metric, stride)
    return fit_and_collect(specs, module, datamodule, recorder, init_sha)
