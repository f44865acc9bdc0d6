"""The Python API, for notebooks and scripts: ``lr_lab.run(config)``, ``lr_lab.resume(run_dir)``.

    import lr_lab
    results = lr_lab.run("sweep", overrides={"trials.max_epochs": 5})
    results.comparison.recommendation.lr

The same checks, run folder, report and ``results.json`` as the command line; bad input raises
:class:`~lr_lab.errors.UsageError` (one line per problem) before anything is written. A run
stopped by Ctrl-C is finished with ``lr_lab.resume(run_dir)`` from the same script, which can
import classes that ``lr-lab --resume`` cannot (those defined in the script's ``__main__``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from lr_lab import interrupt
from lr_lab.config_files import override_argv
from lr_lab.errors import UsageError


def plain_data(value: Any, key: str) -> Any:
    """``value`` as what YAML and JSON hold: numpy (and torch) values as Python numbers and lists.

    Raises:
        UsageError: A value that is not data (naming its key).
    """
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UsageError(f"{key}: keys must be strings, got {list(value)!r}")
        return {k: plain_data(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if value is None or type(value) in (str, int, float, bool):
        return value
    if hasattr(value, "tolist"):  # a numpy array or scalar, a torch tensor
        return plain_data(value.tolist(), key)
    for kind in (bool, int, float, str):  # subclasses yaml.safe_dump refuses
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise UsageError(
        f"{key} = {value!r}: not a config value ({type(value).__name__}); use numbers, "
        "strings, lists and mappings"
    )


def _argv(config: Any, overrides: dict[str, Any] | None, tmp: Path) -> tuple[list[str], str]:
    if config is None:
        argv, name = [], "default"
    elif isinstance(config, (str, Path)):
        argv, name = ["--config", str(config)], Path(config).stem
    elif isinstance(config, dict) or is_dataclass(config):
        data = plain_data(asdict(config) if is_dataclass(config) else config, "")
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        argv, name = ["--config", str(path)], "api"
    else:
        raise UsageError(
            f"config: expected a path, a dict or an ExperimentConfig, got {type(config).__name__}"
        )
    if not isinstance(overrides, dict | None):
        raise UsageError(
            f"overrides: expected a dict of dotted keys, e.g. {{'trials.max_epochs': 5}}, "
            f"got {type(overrides).__name__}"
        )
    overrides = {k: plain_data(v, k) for k, v in (overrides or {}).items()}
    return argv + override_argv(overrides), name


def run(
    config: Any = None,
    *,
    out: str | Path = "runs",
    init: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
):
    """Run one experiment and return its :class:`~lr_lab.results.RunResults`.

    Args:
        config: A YAML file, a bundled config's name (``"sweep"``), a dict of keys, or an
            :class:`~lr_lab.config.ExperimentConfig`; None for ``configs/default.yaml``.
        out: The folder that gets the new run folder.
        init: An ``init.ckpt`` to start every seed from.
        overrides: Dotted keys and values applied on top, e.g. ``{"trials.max_epochs": 5}``.
        quiet: Print no progress lines.

    Returns:
        The complete run's records (``results.comparison`` holds the answer).

    Raises:
        UsageError: Bad input (nothing written).
        LabError: Any other failure the command line reports in one line (the message is that
            line): a trial that breaks the module contract, a full disk, ... (UsageError is one).
        KeyboardInterrupt: Stopped by Ctrl-C; the run folder says ``interrupted`` and can be
            finished with :func:`resume` (or ``lr-lab --resume`` when its classes import).
    """
    from lr_lab.validate import validate

    with tempfile.TemporaryDirectory() as tmp:
        argv, name = _argv(config, overrides, Path(tmp))
        argv += ["--out", str(out)] + (["--init", str(init)] if init else [])
        try:
            inv = validate(argv)
        except UsageError as err:  # a dict config went through a file the caller never saw
            raise UsageError(
                str(err).replace(f"in {Path(tmp) / 'config.yaml'}", "in config")
            ) from None
    inv.config_name = name
    return _launch(inv, quiet)


def resume(run_dir: str | Path, *, quiet: bool = False):
    """Finish a stopped run folder, as ``lr-lab --resume RUN_DIR`` does.

    Only what is missing runs, from the same ``init.ckpt``; a complete, intact run is left as
    it is. From Python, the classes a run names may live in the calling script's ``__main__``.

    Args:
        run_dir: The run folder (``runs/<time>-<config>``).
        quiet: Print no progress lines.

    Returns:
        The complete run's :class:`~lr_lab.results.RunResults`.

    Raises:
        UsageError: Not a run folder, or its config was edited since it started.
        LabError: A damaged ``results.json`` (``ResultsError``), a folder in use by another
            process (``RunDirError``), or any other failure the command line reports in one line.
        KeyboardInterrupt: Stopped again by Ctrl-C; call ``resume`` again.
    """
    from lr_lab.validate import validate

    return _launch(validate(["--resume", str(run_dir)]), quiet)


def _launch(inv: Any, quiet: bool):
    """Open (or reopen) the run folder, run what is left, return the records."""
    from lr_lab.launch import finish, open_run, todo
    from lr_lab.trainer import quiet_lightning

    quiet_lightning()
    with interrupt.stop_on_signals():
        run_dir, results, lock = open_run(inv)
        try:
            if not quiet:
                verb = "resuming" if inv.resume is not None else "run folder"
                print(f"lr-lab: {verb} {run_dir}", flush=True)
            progress = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
            try:
                outcome = finish(inv, run_dir, results, progress, todo(inv, results, run_dir))
            except interrupt.Interrupted:
                raise KeyboardInterrupt(
                    f"stopped; finish with: lr_lab.resume({str(run_dir)!r})"
                ) from None
        finally:
            lock.release()
    return outcome.results
