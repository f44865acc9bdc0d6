"""The Python API, for notebooks and scripts: ``lr_lab.run(config)``.

    import lr_lab
    results = lr_lab.run("sweep", overrides={"trials.max_epochs": 5})
    results.comparison.recommendation.lr

The same checks, run folder, report and ``results.json`` as the command line; bad input raises
:class:`~lr_lab.errors.UsageError` (one line per problem) before anything is written.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from lr_lab import interrupt
from lr_lab.config_files import override_argv
from lr_lab.errors import UsageError


def _argv(config: Any, overrides: dict[str, Any] | None, tmp: Path) -> tuple[list[str], str]:
    if config is None:
        argv, name = [], "default"
    elif isinstance(config, (str, Path)):
        argv, name = ["--config", str(config)], Path(config).stem
    elif isinstance(config, dict) or is_dataclass(config):
        data = asdict(config) if is_dataclass(config) else config
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        argv, name = ["--config", str(path)], "api"
    else:
        raise UsageError(
            f"config: expected a path, a dict or an ExperimentConfig, got {type(config).__name__}"
        )
    return argv + override_argv(overrides or {}), name


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
        KeyboardInterrupt: Stopped by Ctrl-C; the run folder says ``interrupted`` and can be
            finished with ``lr-lab --resume``.
    """
    from lr_lab.validate import validate

    with tempfile.TemporaryDirectory() as tmp:
        argv, name = _argv(config, overrides, Path(tmp))
        argv += ["--out", str(out)] + (["--init", str(init)] if init else [])
        inv = validate(argv)
    inv.config_name = name
    from lr_lab.launch import finish, open_run, todo
    from lr_lab.trainer import quiet_lightning

    quiet_lightning()
    with interrupt.stop_on_signals():
        run_dir, results, lock = open_run(inv)
        try:
            if not quiet:
                print(f"lr-lab: run folder {run_dir}", flush=True)
            progress = (lambda line: None) if quiet else (lambda line: print(line, flush=True))
            try:
                outcome = finish(inv, run_dir, results, progress, todo(inv, results, run_dir))
            except interrupt.Interrupted:
                raise KeyboardInterrupt(
                    f"stopped; finish with: lr-lab --resume {run_dir}"
                ) from None
        finally:
            lock.release()
    return outcome.results
