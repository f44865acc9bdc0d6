"""Every check on the input, before a run folder exists: light ones first, then the heavy ones.

Light checks (types, ranges, the CSV file, memory) need neither torch nor Lightning and answer in
well under a second; if they find anything, that is reported at once. Only then come the checks
that must import something: the user's classes (import, ``init_args`` and their types, the
hooks, the LR attribute), the accelerator, an ``--init`` checkpoint, and a ``--resume`` folder's
records.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from lr_lab.arguments import Invocation, UsageError, parse_args
from lr_lab.checks import check_config
from lr_lab.config_files import flat_keys
from lr_lab.csv_file import DataError, read_csv
from lr_lab.rundir import check_out_dir


def light_problems(inv: Invocation) -> list[str]:
    """Problems found without torch or Lightning: types, values, the CSV file, memory."""
    cfg = inv.cfg
    problems = list(inv.problems)
    csv_shape = None
    if cfg.builtin_data and cfg.data.csv_path:
        # Absolute, so that config.yaml (and --resume) work from any folder.
        cfg.data.csv_path = str(Path(cfg.data.csv_path).resolve())
        try:
            csv_shape = read_csv(cfg.data.csv_path).shape
        except DataError as err:
            problems.append(str(err))
    problems += [p for p in check_config(cfg, csv_shape) if p not in problems]
    if inv.resume is None and inv.init is not None and not Path(inv.init).is_file():
        problems.append(f"--init {inv.init}: initial checkpoint not found")
    return problems


def heavy_problems(inv: Invocation) -> list[str]:
    """Problems that need the user's classes, torch or Lightning imported."""
    cfg = inv.cfg
    problems: list[str] = []
    accelerator = cfg.trainer.accelerator
    if accelerator in ("gpu", "cuda", "mps") and not _device_found(accelerator):
        problems.append(
            f"trainer.accelerator = {accelerator!r}: no {accelerator.upper()} device is "
            "visible to torch on this machine; use cpu or auto"
        )
    if cfg.builtin_model and cfg.builtin_data and inv.init is None:
        return problems  # nothing else to import and try
    from lr_lab.init_args import convert_user_init_args
    from lr_lab.providers import build_model, check_user_classes

    # Converted first: the classes are then tried with the values config.yaml will record.
    if bad := convert_user_init_args(cfg, inv.init_text):
        return problems + bad
    problems += check_user_classes(cfg)
    if problems or inv.init is None or inv.resume is not None:
        return problems
    from lr_lab.initial_state import InitStateError, check_fits, read_initial_state

    try:
        state = read_initial_state(Path(inv.init))["state_dict"]
        check_fits(Path(inv.init), state, build_model(cfg, 1.0))
    except InitStateError as err:
        problems.append(f"--init {err}")
    return problems


def _device_found(accelerator: str) -> bool:
    """Whether torch sees a device of this kind (a quick no without a driver, else torch says)."""
    import platform

    if (
        accelerator != "mps"
        and not Path("/proc/driver/nvidia/version").exists()
        and (
            platform.system() == "Linux" and not Path("/dev/kfd").exists()  # no NVIDIA, no ROCm
        )
    ):
        return False
    import torch

    if accelerator == "mps":
        return torch.backends.mps.is_available()
    return torch.cuda.is_available()


def config_changes(recorded: dict, current: dict) -> list[str]:
    """``key: old -> new`` for every key whose value differs."""
    old, new = flat_keys(recorded), flat_keys(current)
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def validate(argv: list[str]) -> Invocation:
    """Parse and check the command line; raise :class:`UsageError` listing every problem.

    For ``--resume DIR`` the run's own ``config.yaml`` is parsed instead, and no other option
    is accepted. ``--print_config`` is checked like a run (``--out`` aside);
    ``--print_config=skip_check`` is not checked at all.
    """
    inv = _parse(argv)
    if inv.print_config == "skip_check":
        return inv
    if problems := light_problems(inv):
        raise UsageError("\n".join(problems))
    # --print_config shows what a run would use (init_args converted), so it is checked as one;
    # only --out is not tried, as nothing is written.
    if not inv.print_config and inv.resume is None and (why := check_out_dir(Path(inv.out))):
        raise UsageError(why)
    if problems := heavy_problems(inv):
        raise UsageError("\n".join(problems))
    return inv


def _parse(argv: list[str]) -> Invocation:
    from lr_lab.argv import drop_option, option_value

    resume = option_value(argv, "--resume")
    if resume is None:
        return parse_args(argv)
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "results.json").is_file():
        raise UsageError(
            f"--resume {run_dir}: not an lr_lab run folder (needs config.yaml and results.json)"
        )
    rest = drop_option(argv, "--resume")
    if rest:
        raise UsageError(
            f"--resume {run_dir}: takes no other options (got {' '.join(rest)}); "
            "the run keeps its config"
        )
    inv = parse_args(["--config", str(run_dir / "config.yaml")])
    inv.resume, inv.config_name = str(run_dir), run_dir.name
    return inv


def check_resume(inv: Invocation, recorded: dict) -> None:
    """Refuse to resume a run whose ``config.yaml`` was edited since it started."""
    if recorded and (changes := config_changes(recorded, asdict(inv.cfg))):
        raise UsageError(
            f"--resume {inv.resume}: config.yaml differs from the config this run started with "
            f"({'; '.join(changes[:5])}); put it back, or start a new run"
        )
