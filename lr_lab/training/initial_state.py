"""The checkpointed initial weights every trial and the finder start from.

``init.ckpt`` is a plain dict ``{"state_dict": {name: tensor}, "architecture": {...}, "seed": s}``
that ``torch.load(path, weights_only=True)`` reads. Its identity is the sha256 of the weights
(names, dtypes, shapes and bytes), so a file re-saved with the same weights keeps its hash.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lr_lab.atomic import atomic_write
from lr_lab.errors import InitStateError


def weights_sha256(state_dict: Mapping[str, Tensor]) -> str:
    """Hash a state dict's names, dtypes, shapes and values, in name order.

    Args:
        state_dict: Parameter and buffer tensors by name.

    Returns:
        The hex sha256 digest.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_initial_state(
    module: nn.Module, path: Path, architecture: dict[str, Any], seed: int
) -> str:
    """Write the module's current weights as the initial checkpoint.

    Args:
        module: The freshly initialised module.
        path: Where to write ``init.ckpt`` (atomically); an existing file is never overwritten.
        architecture: What the weights are shaped for (recorded for error messages).
        seed: The seed that drew them.

    Returns:
        The sha256 of the saved weights.
    """
    state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "architecture": architecture, "seed": seed}, buffer)
    atomic_write(path, buffer.getvalue(), exclusive=True)
    return weights_sha256(state)


def read_initial_state(path: Path) -> dict[str, Any]:
    """Read and sanity-check an initial checkpoint (``weights_only=True``, never pickled code).

    Args:
        path: The checkpoint file.

    Returns:
        The checkpoint dict, with a ``"state_dict"`` of tensors.

    Raises:
        InitStateError: Missing, truncated, not a checkpoint, or without a state dict.
    """
    if not path.is_file():
        raise InitStateError(f"{path}: initial checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InitStateError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise InitStateError(f"{path}: not an lr_lab checkpoint (no 'state_dict' dict inside)")
    if not all(isinstance(v, Tensor) for v in ckpt["state_dict"].values()):
        raise InitStateError(f"{path}: 'state_dict' holds something other than tensors")
    return ckpt


def load_initial_state(path: Path, module: nn.Module) -> str:
    """Load the initial checkpoint into ``module`` exactly (strict names and shapes).

    Args:
        path: The checkpoint file.
        module: The module to load into.

    Returns:
        The sha256 of the weights the module now holds.

    Raises:
        InitStateError: The file is unusable or shaped for another architecture.
    """
    ckpt = read_initial_state(path)
    check_fits(path, ckpt["state_dict"], module)
    module.load_state_dict(ckpt["state_dict"], strict=True)
    return weights_sha256(module.state_dict())


def check_fits(path: Path, state: Mapping[str, Tensor], module: nn.Module) -> None:
    """Raise :class:`InitStateError` naming the first mismatch between ``state`` and ``module``."""
    reference = module.state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise InitStateError(
            f"{path}: shaped for another architecture (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, shape in expected.items():
        if found[name] != shape:
            raise InitStateError(
                f"{path}: shaped for another architecture ({name} is {list(found[name])}, "
                f"this model needs {list(shape)})"
            )
        if state[name].dtype != reference[name].dtype:
            # load_state_dict would cast silently, and the trials' hash would not be the file's.
            raise InitStateError(
                f"{path}: {name} is {state[name].dtype}, this model needs {reference[name].dtype}"
            )
