"""Memory a run will need, against what this process may use: named before, not after a crash.

What a process may use is the least of the machine's available memory, its address-space limit
(``ulimit -v``) and its container's limit (cgroup ``memory.max``, or v1's ``limit_in_bytes``),
less what the container already uses. Imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lr_lab.config.schema import ExperimentConfig, RegressionDataArgs, RegressionModelArgs

MODEL, DATA = "model.init_args.", "data.init_args."
# Bytes a float32 parameter costs while training: weight, gradient, init copy, slack.
BYTES_PER_PARAM = 4 * 4
OPTIMIZER_STATE = {"sgd": 0, "sgd+momentum": 1, "adam": 2}
CGROUP = Path("/sys/fs/cgroup")


def _machine_available() -> int | None:
    """Bytes of memory this machine can still give (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Bytes this process's cgroup may still take (its limit less its use), or None."""
    for limit, used in (("memory.max", "memory.current"),
                        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):  # fmt: skip
        try:
            text = (CGROUP / limit).read_text().strip()
            if text == "max":
                return None
            room = int(text) - int((CGROUP / used).read_text().strip())
        except (OSError, ValueError):
            continue
        if room < 2**60:  # v1 writes a huge number for "no limit"
            return max(0, room)
    return None


def _address_space_room() -> int | None:
    """Bytes of address space left under ``ulimit -v`` (RLIMIT_AS), or None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        size = 0
    return max(0, soft - size)


def available_memory() -> int | None:
    """Bytes this process may still use, or None if unknown.

    The least of the machine's, the container's and the address-space limit's room.
    """
    known = [
        v for v in (_machine_available(), _cgroup_room(), _address_space_room()) if v is not None
    ]
    return min(known) if known else None


def mlp_parameters(input_dim: int, hidden_dims: list[int]) -> int:
    """Number of parameters of the built-in MLP (Linear layers with biases, one output)."""
    widths = [input_dim, *hidden_dims, 1]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def check_memory(
    cfg: ExperimentConfig, m: RegressionModelArgs | None, n_inputs: int | None, bad: Any
) -> None:
    """A model or data set this machine cannot hold is named now, not after a crash."""
    free = available_memory()
    if free is None or n_inputs is None or n_inputs < 1:
        return
    if cfg.builtin_data:
        d = RegressionDataArgs(**cfg.data.init_args)
        if d.csv_path is None and d.n_samples >= 2:
            # x and y as float32, their train/val split copies, and gathered batches.
            need = 3 * 4 * d.n_samples * (d.input_dim + 1)
            if need > free:
                bad(f"{DATA}n_samples", d.n_samples, f"with {DATA}input_dim = {d.input_dim} needs "
                    f"about {_gib(need)} of memory for the data; {_gib(free)} is available")  # fmt: skip
    if m is None or any(w < 1 for w in m.hidden_dims):
        return
    params = mlp_parameters(n_inputs, m.hidden_dims)
    state = OPTIMIZER_STATE[
        "adam" if m.optimizer == "adam" else "sgd+momentum" if m.momentum else "sgd"
    ]
    copies = len(cfg.trials.lrs) if cfg.trials.batched else 1
    need = params * (BYTES_PER_PARAM + 4 * state) * copies
    if need > free:
        bad(f"{MODEL}hidden_dims", m.hidden_dims, f"{params:,} parameters need about "
            f"{_gib(need)} to train; {_gib(free)} is available")  # fmt: skip
