"""The ``ray`` executor: trials as Ray Tune trials, on a local Ray or a cluster.

``pip install -e '.[ray]'``. One Tune trial per :class:`~lr_lab.spec.TrialSpec`, through
``tune.Tuner`` with ``tune.with_resources`` (``ray.cpus_per_trial``, ``ray.gpus_per_trial``) and a
grid over the planned trials' indices; the specs and each seed's ``init.ckpt`` travel through the
object store (``tune.with_parameters``), so a node needs neither the run folder nor a shared disk.
A trial runs the same :func:`~lr_lab.runner.run_trial` in a scratch folder on its node and returns
its result and its TensorBoard event files; this process writes them into the run folder as each
trial finishes. Tune's own folders live in a temporary directory that is removed afterwards;
nothing of Ray's lands in the run folder or in ``~``.

``ray.address``: null starts a private local Ray (shut down afterwards); ``auto`` or a cluster
address connects to a running cluster (left running). The user's classes and any CSV file must be
importable and readable on the cluster's nodes (e.g. ``pip install`` the package there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from lr_lab import interrupt
from lr_lab.analysis.results import TrialResult
from lr_lab.atomic import atomic_write
from lr_lab.config.schema import RayConfig
from lr_lab.errors import LabError, TrialError
from lr_lab.training.problem import TrialSpec

# Read by Ray and Tune when they start: quiet, no files of Tune's per trial, trials stay in the
# driver's folder, and a stop request is ours to handle (Tune's own SIGINT handler would let fit()
# return as if the run were done).
QUIET_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}
DIR_PREFIX = "trial_"  # Tune's trial folder trial_<index>: how a result maps back to its spec
_TOKEN: str | None = None


class RayUnavailable(LabError):
    """Ray is not installed, or its cluster cannot run the trials."""


def _trial(config: dict, specs: list[TrialSpec], inits: dict[int, bytes]) -> dict:
    """One Tune trial, on a Ray worker: the spec's trial in a scratch folder, files returned."""
    from ray import cloudpickle

    from lr_lab.training.runner import run_trial
    from lr_lab.training.trainer import quiet_lightning

    quiet_lightning()
    index = config["index"]
    spec = specs[index]
    with tempfile.TemporaryDirectory(prefix="lr_lab_trial_") as tmp:
        folder = Path(tmp) / f"seed{spec.seed}"
        folder.mkdir()
        (folder / "init.ckpt").write_bytes(inits[spec.seed])
        local = replace(spec, init_path=str(folder / "init.ckpt"), log_dir=str(folder))
        result = run_trial(local)
        run = folder / spec.name
        files = {
            p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()
        }
    return {"lr_lab": cloudpickle.dumps((index, result, files))}


@contextlib.contextmanager
def _environment(local: bool) -> Iterator[None]:
    overrides = dict(QUIET_ENV)
    global _TOKEN
    if local and not (os.environ.get("RAY_AUTH_MODE") or os.environ.get("RAY_AUTH_TOKEN")):
        # A private Ray with token auth, quietly, without writing ~/.ray/auth_token; one token
        # per process (Ray caches the first it reads).
        _TOKEN = _TOKEN or secrets.token_hex(32)
        overrides.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_TOKEN)
    saved = {k: os.environ.get(k) for k in (*overrides, "PYTHONBREAKPOINT")}
    os.environ.update(overrides)
    loggers = {n: logging.getLogger(n).level for n in ("ray", "ray.tune", "ray.train")}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)  # trial errors reach us as results
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


def _reread_auth_settings() -> None:
    """Make Ray read RAY_AUTH_MODE again (it reads it once, when first imported).

    Imported before we set it, the driver would not speak to its own token-auth cluster. Ray's
    own auth setup calls this (private) re-read after changing the mode.
    """
    with contextlib.suppress(Exception):  # moved or renamed in another Ray version
        from ray._raylet import Config

        Config.initialize("")


def _callback(specs: list[TrialSpec], on_result: Callable[[TrialResult], None]) -> Any:
    from ray import tune

    class Report(tune.Callback):
        """In this process: each finished trial's files and record, and our stop requests."""

        error: BaseException | None = None

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            interrupt.check()  # Ctrl-C / SIGTERM: out of fit(); ray.shutdown() ends the trials

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            if "lr_lab" not in result or self.error is not None:
                return
            index, record, files = pickle.loads(result["lr_lab"])
            spec = specs[index]
            try:
                run = Path(spec.log_dir) / spec.name
                run.mkdir(parents=True, exist_ok=True)
                for name, data in files.items():
                    (run / name).parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(run / name, data)
                on_result(record)
            except Exception as err:  # a full disk: said once fit() returns
                self.error = err

    return Report()


def _check_resources(ray: Any, cfg: RayConfig, local: bool) -> None:
    have = ray.cluster_resources()
    if cfg.cpus_per_trial <= have.get("CPU", 0) and cfg.gpus_per_trial <= have.get("GPU", 0):
        return
    message = (
        f"ray.cpus_per_trial = {cfg.cpus_per_trial:g}, ray.gpus_per_trial = "
        f"{cfg.gpus_per_trial:g}: the Ray cluster has {have.get('CPU', 0):g} CPU and "
        f"{have.get('GPU', 0):g} GPU, so no trial could start"
    )
    if local:  # a cluster may grow (autoscaler); a local Ray never does
        raise RayUnavailable(message)
    logging.getLogger("lr_lab").warning("%s; waiting for the cluster to grow", message)


def run_ray(
    specs: list[TrialSpec], cfg: RayConfig, on_result: Callable[[TrialResult], None]
) -> None:
    """Run ``specs`` as Ray Tune trials; hand each result to ``on_result`` as it finishes.

    Raises:
        RayUnavailable: Ray is not installed, or no trial fits on the cluster.
        TrialError: A trial raised (the first, named).
        Interrupted: A stop was requested; unfinished trials stay pending.
    """
    local = cfg.address is None
    with _environment(local):
        already = "ray" in sys.modules
        try:
            import ray
            from ray import tune
        except ImportError:
            raise RayUnavailable(
                "trials.executor = 'ray' needs Ray: pip install -e '.[ray]'"
            ) from None
        storage = tempfile.mkdtemp(prefix="lr_lab_tune_")
        session = tempfile.mkdtemp(prefix="lrlab_ray_") if local else None
        started = not ray.is_initialized()
        if started and already and "RAY_AUTH_TOKEN" in os.environ:
            _reread_auth_settings()
        try:
            if started:
                extra = {"_temp_dir": session} if session else {}
                paths = [
                    p for p in sys.path if p and not p.startswith((sys.prefix, sys.base_prefix))
                ]
                env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}} if local else None
                ray.init(address=cfg.address, include_dashboard=False, configure_logging=False,
                         log_to_driver=False, runtime_env=env, **extra)  # fmt: skip
            _check_resources(ray, cfg, local)
            inits = {s.seed: Path(s.init_path).read_bytes() for s in specs}
            report = _callback(specs, on_result)
            trainable = tune.with_resources(
                tune.with_parameters(_trial, specs=specs, inits=inits),
                {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial},
            )
            name = lambda trial: f"{DIR_PREFIX}{trial.config['index']}"  # noqa: E731
            grid = tune.Tuner(
                trainable,
                param_space={"index": tune.grid_search(list(range(len(specs))))},
                tune_config=tune.TuneConfig(trial_name_creator=name, trial_dirname_creator=name),
                run_config=tune.RunConfig(
                    name="lr_lab", storage_path=storage, verbose=0, callbacks=[report],
                    # The first failing trial stops the rest: the run stops there anyway.
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=True),
                ),
            ).fit()  # fmt: skip
            if report.error is not None:
                raise report.error
            for result in grid:
                if result.error is not None:
                    index = int(Path(str(result.path)).name.removeprefix(DIR_PREFIX))
                    cause = getattr(result.error, "cause", None) or result.error
                    raise TrialError(specs[index].key, cause)
        finally:
            if started:
                ray.shutdown()
            shutil.rmtree(storage, ignore_errors=True)
            if session:
                shutil.rmtree(session, ignore_errors=True)
