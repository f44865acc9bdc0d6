"""Each seed's ``init.ckpt``: made once from the seed, or copied from ``--init``.

A resumed run that makes it again proves it the same (by the sha256 it recorded).

The file format (weights and their sha256) is :mod:`lr_lab.training.initial_state`'s.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from lr_lab.analysis.records import INIT_FILE
from lr_lab.atomic import atomic_write
from lr_lab.errors import InitStateError
from lr_lab.training.initial_state import (
    check_fits,
    read_initial_state,
    save_initial_state,
    weights_sha256,
)
from lr_lab.training.problem import Problem


def prepare_initial_state(
    problem: Problem, seed: int, folder: Path, source: Path | None, recorded: str | None
) -> str:
    """Make sure ``folder/init.ckpt`` exists and fits the model; return its weights' sha256.

    Fresh weights come from ``L.seed_everything(seed)`` and one construction of the module. A
    missing or unreadable ``init.ckpt`` of a resumed run is made again and must hash to the value
    the run recorded.

    Args:
        problem: The module (the architecture the checkpoint must fit).
        seed: Seeds fresh weights when there is no checkpoint yet.
        folder: The seed's folder.
        source: A user checkpoint to start from (``--init``), copied in unchanged.
        recorded: The hash recorded by an earlier, interrupted run (``--resume``).

    Returns:
        The sha256 of the initial weights.

    Raises:
        InitStateError: The checkpoint is unusable, or differs from the one recorded.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INIT_FILE
    module = problem.make_model(lr=1.0)
    if path.exists():
        try:
            state = read_initial_state(path)["state_dict"]
        except InitStateError:
            if not recorded:
                raise
            path.unlink()  # damaged: made again below and checked against the recorded hash
        else:
            check_fits(path, state, module)
            return _checked(path, weights_sha256(state), recorded)
    if source is not None:
        state = read_initial_state(source)["state_dict"]
        check_fits(source, state, module)
        sha = _checked(source, weights_sha256(state), recorded)
        atomic_write(path, source.read_bytes(), exclusive=True)
        return sha
    # Determinism in one place: the seed draws the initial weights.
    L.seed_everything(seed, verbose=False)
    module = problem.make_model(lr=1.0)
    if recorded:  # re-made for a resumed run: prove it is the same before writing it
        _checked(path, weights_sha256(module.state_dict()), recorded)
    return save_initial_state(module, path, problem.architecture(), seed)


def _checked(path: Path, sha: str, recorded: str | None) -> str:
    if recorded and sha != recorded:
        raise InitStateError(
            f"{path}: weights changed since the run recorded them (sha256 {sha[:12]} != {recorded[:12]})"
        )
    return sha
