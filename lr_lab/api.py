"""The core entry, for notebooks, scripts, the command line and the study.

    import lr_lab
    results = lr_lab.run("sweep", overrides={"trials.max_epochs": 5})
    results.comparison.recommendation.lr

A config (a path or bundled name, a dict, an :class:`~lr_lab.config.schema.ExperimentConfig`)
goes in, a typed :class:`~lr_lab.analysis.results.RunResults` comes out; nothing passes through a
command line or a temporary file. Every input is checked before a run folder exists: light
checks first (no torch), then the classes, tried. Bad input raises
:class:`~lr_lab.errors.UsageError` (one line per problem); a run stopped by Ctrl-C raises
``KeyboardInterrupt`` naming ``lr_lab.resume(run_dir)``, which finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lr_lab.config.checks import check_execution, check_request
from lr_lab.config.class_path import qualified_name
from lr_lab.config.parse import RESUME_OPTIONS, Request, load
from lr_lab.config.schema import BUILTIN_ARGS
from lr_lab.errors import UsageError


def check(request: Request, model: Any = None, datamodule: Any = None):  # noqa: ANN201
    """Every check on a request, light ones first; the experiment to run.

    Args:
        request: The parsed config and run options.
        model: A LightningModule class, factory or instance given instead of ``model.class_path``.
        datamodule: The same for ``data``.

    Returns:
        The :class:`~lr_lab.experiment.session.Experiment`.

    Raises:
        UsageError: Every problem found, one line each (nothing is written).
    """
    cfg = request.config
    for section, obj in (("model", model), ("data", datamodule)):
        spec = getattr(cfg, section)
        if obj is not None and spec.class_path != qualified_name(obj):
            # The object's class (or factory) stands where the config named one: a built-in's
            # default arguments do not apply to it; arguments given for it do.
            builtin = spec.class_path in BUILTIN_ARGS and section not in request.given
            spec.class_path, spec.init_args = qualified_name(obj), {} if builtin else spec.init_args
    problems = list(request.problems)
    if request.resume is None:
        problems += [p for p in check_request(cfg, request.init) if p not in problems]
    else:  # only what --resume may change: the rest was checked when the run started
        problems += [p for p in check_execution(cfg) if p not in problems]
    problems += _objects_fit(request, model, datamodule)
    if problems:
        raise UsageError("\n".join(problems))
    if request.resume is None and request.print_config is None:
        from lr_lab.experiment.folder import check_out_dir

        if why := check_out_dir(Path(request.out)):
            raise UsageError(why)
    from lr_lab.training.problem import Experiment, fit_settings, problem_of

    init = Path(request.init) if request.init is not None and request.resume is None else None
    if _light(request, model, datamodule):  # nothing to import and try: torch stays unloaded
        return Experiment(cfg, problem_of(cfg), fit_settings(cfg), init)
    from lr_lab.training.classes import check_device, check_init, resolve

    problem, fit, problems = resolve(cfg, model, datamodule)
    problems += check_device(fit.trainer)
    if not problems and init is not None:
        problems += check_init(init, problem)
    if problems:
        raise UsageError("\n".join(problems))
    return Experiment(cfg, problem, fit, init)


def _objects_fit(request: Request, model: Any, datamodule: Any) -> list[str]:
    """What the classes and objects given cannot do here, one line each (before anything runs).

    A module of the user's with no DataModule named would get the built-in regression batches
    and fail inside ``training_step``; Ray's workers cannot import what lives in ``__main__``.
    """
    cfg = request.config
    problems = []
    user_model = model is not None or not cfg.builtin_model
    if user_model and datamodule is None and cfg.builtin_data and "data" not in request.given:
        problems.append(
            "data.class_path: none given for your LightningModule (the built-in regression data "
            "would feed it); name your LightningDataModule (or pass datamodule=), or give "
            f"data.class_path: {cfg.data.class_path} for the built-in data"
        )
    if cfg.trials.executor == "ray":
        for section, obj in (("model", model), ("data", datamodule)):
            path = getattr(cfg, section).class_path if obj is None else qualified_name(obj)
            if path.startswith("__main__."):
                problems.append(
                    f"trials.executor = 'ray': {section} is defined in __main__ (this script or "
                    "notebook), which Ray's workers cannot import; move it into a module, or "
                    "use trials.executor: processes or inline"
                )
    return problems


def _light(request: Request, model: Any, datamodule: Any) -> bool:
    """Whether a request names nothing to import and try: the built-ins, no objects, no --init."""
    cfg = request.config
    return (
        cfg.builtin_model
        and cfg.builtin_data
        and model is None
        and datamodule is None
        and request.init is None
        and set(cfg.trainer) <= {"accelerator"}
        and str(cfg.trainer.get("accelerator", "auto")) in ("auto", "cpu")
    )


def resume_request(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> Request:
    """The request that finishes ``run_dir``: its own ``config.yaml``, and where trials run now.

    Raises:
        UsageError: Not a run folder, or an option other than where trials run.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "results.json").is_file():
        raise UsageError(
            f"--resume {run_dir}: not an lr_lab run folder (needs config.yaml and results.json)"
        )
    bad = sorted(set(overrides or {}) - set(RESUME_OPTIONS))
    if bad:
        raise UsageError(f"--resume {run_dir}: only where trials run may change, not {bad[0]}")
    request = load(run_dir / "config.yaml", overrides)
    request.resume, request.name = str(run_dir), run_dir.name
    return request


def start(
    request: Request,
    *,
    model: Any = None,
    datamodule: Any = None,
    folder: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
    on_open: Callable | None = None,
    waiting: Callable[[], None] = lambda: None,
):  # noqa: ANN201
    """Check ``request`` and run (or finish) it: the one sequence behind every caller.

    Args:
        request: What to run (or, with ``request.resume``, which folder to finish).
        model: See :func:`run`.
        datamodule: See :func:`run`.
        folder: The new run's folder by name (a study's problem), instead of ``out/<time>-<name>``.
        progress: Called with one line per finished step.
        on_open: Called once the folder is open (see :func:`~lr_lab.experiment.session.run_session`).
        waiting: Called if another run of this process is in progress.

    Returns:
        The :class:`~lr_lab.experiment.session.Outcome`.
    """
    exp = check(request, model, datamodule)
    from lr_lab.experiment.session import run_session

    resumed = request.resume is not None
    return run_session(
        exp,
        out=Path(request.out),
        name=request.name,
        folder=Path(request.resume) if resumed else folder,
        resume=resumed,
        progress=progress,
        on_open=on_open,
        waiting=waiting,
    )


def _say(quiet: bool) -> Callable[[str], None]:
    return (lambda line: None) if quiet else (lambda line: print(line, flush=True))


def run(
    config: Any = None,
    *,
    model: Any = None,
    datamodule: Any = None,
    overrides: dict[str, Any] | None = None,
    out: str | Path = "runs",
    init: str | Path | None = None,
    quiet: bool = False,
):  # noqa: ANN201
    """Run one experiment and return its :class:`~lr_lab.analysis.results.RunResults`.

    Args:
        config: A YAML file, a bundled config's name (``"sweep"``), a dict of keys, or an
            :class:`~lr_lab.config.schema.ExperimentConfig`; None for the defaults.
        model: Your LightningModule: a class (its ``init_args`` from the config), a factory, or
            an instance (deep-copied for every trial: yours is never trained).
        datamodule: Your LightningDataModule, the same ways.
        overrides: Dotted keys and values applied on top, e.g. ``{"trials.max_epochs": 5}``.
        out: The folder that gets the new run folder.
        init: An ``init.ckpt`` to start every seed from.
        quiet: Print no progress lines.

    Returns:
        The complete run's records (``results.comparison`` holds the answer); in a notebook
        they show the table and the answer, and ``results.plot()`` the pictures.

    Raises:
        UsageError: Bad input (nothing written).
        LabError: Any other failure the command line reports in one line (the message is that
            line): a trial that breaks the module contract, a full disk, ... (UsageError is one).
        KeyboardInterrupt: Stopped by Ctrl-C; the run folder says ``interrupted`` and can be
            finished with :func:`resume`.
    """
    request = load(config, overrides)
    request.out, request.init = str(out), str(init) if init is not None else None
    say = _say(quiet)
    say_open = lambda run_dir, results, work: say(f"lr-lab: run folder {run_dir}")  # noqa: E731
    waiting = lambda: say("lr-lab: waiting for the run in progress in this process")  # noqa: E731
    outcome = start(request, model=model, datamodule=datamodule, progress=say, on_open=say_open,
                    waiting=waiting)  # fmt: skip
    return _shown(outcome)


def resume(
    run_dir: str | Path,
    *,
    model: Any = None,
    datamodule: Any = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
):  # noqa: ANN201
    """Finish a stopped run folder, as ``lr-lab --resume RUN_DIR`` does.

    Only what is missing runs, from the same ``init.ckpt``; a complete, intact run is left as
    it is. From Python, the classes a run names may live in the calling script's ``__main__``.

    Args:
        run_dir: The run folder (``runs/<time>-<config>``).
        model: The module (or class, or factory) the run was started with from Python.
        datamodule: The same for the data.
        overrides: Where trials run now (``trials.executor``, ``trials.workers``, ``ray.*``).
        quiet: Print no progress lines.

    Returns:
        The complete run's :class:`~lr_lab.analysis.results.RunResults`.

    Raises:
        UsageError: Not a run folder, or its config was edited since it started.
        LabError: A damaged ``results.json`` (``ResultsError``), a folder in use by another
            process (``RunDirError``), or any other failure the command line reports in one line.
        KeyboardInterrupt: Stopped again by Ctrl-C; call ``resume`` again.
    """
    say = _say(quiet)
    request = resume_request(run_dir, overrides)
    say_open = lambda d, results, work: say(f"lr-lab: resuming {d}")  # noqa: E731
    return _shown(start(request, model=model, datamodule=datamodule, progress=say,
                        on_open=say_open))  # fmt: skip


def _shown(outcome):  # noqa: ANN001, ANN202
    """The outcome's records, able to show themselves in a notebook."""
    from lr_lab.report.notebook import Results

    return Results.of(outcome.results, outcome.run_dir)
