"""The command line: ``lr-lab`` / ``python scripts/run.py``.

    python scripts/run.py                                  # configs/default.yaml
    python scripts/run.py --config configs/sweep.yaml --trials.max_epochs 5
    python scripts/run.py --resume runs/20261129-101500-default

Parses and validates the config (YAML checked against the type hints of
:class:`~lr_lab.config.ExperimentConfig`, plus :func:`~lr_lab.config.check_config`), creates a
new run folder, runs the experiment, prints the comparison. Exit codes: 0 done, 1 failed,
2 bad input (nothing written), 130 interrupted by Ctrl-C, 143 by SIGTERM (resume with
``--resume RUN_DIR``).
"""

from __future__ import annotations

import difflib
import re
import signal
import sys
import tempfile
import time
from argparse import ArgumentError
from pathlib import Path

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_parsing_settings

from lr_lab import interrupt
from lr_lab.config import ExperimentConfig, check_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
META_KEYS = ("config", "out", "init", "resume", "__default_config__")
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input; each line of the message is one problem."""


def build_parser() -> ArgumentParser:
    """The parser: every field of :class:`ExperimentConfig` as a dotted option, plus run options."""
    # The field docstrings in config.py become the --help text.
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(
        prog="lr-lab",
        description="Train a small regression net at several fixed learning rates from one initial "
        "checkpoint, run Lightning's LR finder from the same checkpoint, and compare.",
        exit_on_error=False,
        allow_abbrev=False,
        default_config_files=[str(DEFAULT_CONFIG)] if DEFAULT_CONFIG.is_file() else None,
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="YAML experiment file (default: configs/default.yaml)",
    )
    parser.add_class_arguments(ExperimentConfig, nested_key=None, fail_untyped=True)
    parser.add_argument(
        "--out", type=str, default="runs", help="Folder that gets one new run folder per run"
    )
    parser.add_argument(
        "--init",
        type=str | None,
        default=None,
        help="Start every trial from this init.ckpt instead of fresh weights",
    )
    parser.add_argument(
        "--resume", type=str | None, default=None, help="Finish an interrupted run folder"
    )
    return parser


def _known_keys(parser: ArgumentParser) -> list[str]:
    keys = []
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                keys.append(opt[2:])
    return keys


def _did_you_mean(key: str, parser: ArgumentParser) -> str:
    close = difflib.get_close_matches(key, _known_keys(parser), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _one_line(err: Exception, parser: ArgumentParser) -> str:
    """Jsonargparse's (multi-line) error as one line naming the key, with a suggestion."""
    text = " ".join(str(err).split())
    if m := re.search(r"Group '([\w.]+)' does not accept option '([\w.]+)'", text):
        key = f"{m.group(1)}.{m.group(2)}"
        return f"{key}: unknown key{_did_you_mean(key, parser)}"
    if m := re.search(r"Key '([\w.]+)' is not expected", text):
        return f"{m.group(1)}: unknown key{_did_you_mean(m.group(1), parser)}"
    if m := re.search(r"[Uu]nrecognized arguments: (\S+)", text):
        token = m.group(1)
        if not token.startswith("--"):
            return f"unexpected argument {token!r} (options look like --key value)"
        key = token[2:].split("=")[0]
        return f"--{key}: unknown option{_did_you_mean(key, parser)}"
    if m := re.search(r'Parser key "config": (.*)', text):
        return f"--config: {m.group(1)}"
    if "Problems parsing config" in text:
        return f"config file is not valid YAML: {text.split(':', 1)[1].strip()}"
    if m := re.search(r'Parser key "([\w.]+)": Expected an? (.+?)\. Got value: (.*)$', text):
        key, expected, value = m.groups()
        expected = re.sub(r"<class '(\w+)'>", r"\1", expected)
        expected = re.sub(r"typing\.Literal\[(.*?)\]", r"one of [\1]", expected)
        expected = {
            "int": "an integer",
            "float": "a finite number",
            "list": "a list, e.g. [0.1, 0.01]",
        }.get(expected, expected)
        return f"{key} = {value}: expected {expected}"
    if m := re.search(r'Parser key "([\w.]+)": (.*)', text):
        return f"{m.group(1)}: {m.group(2)}"
    return text


def parse_config(
    argv: list[str], parser: ArgumentParser | None = None
) -> tuple[ExperimentConfig, Namespace]:
    """Parse and validate the command line into an :class:`ExperimentConfig`.

    Args:
        argv: Command-line arguments (without the program name).
        parser: A parser from :func:`build_parser` (built if not given).

    Returns:
        The config and the raw namespace (which also holds ``out``, ``init`` and ``resume``).

    Raises:
        UsageError: Unknown keys, wrong types or values, a missing or broken config or CSV file.
    """
    parser = parser or build_parser()
    config_arg = _option(argv, "--config")
    if config_arg is not None:
        _check_yaml_file(Path(config_arg))
    ns, problems = _parse_collecting(parser, argv)
    values = {k: v for k, v in ns.clone().as_dict().items() if k not in META_KEYS}
    try:
        cfg = parser.instantiate(Namespace(**{k: ns[k] for k in values}))
        cfg = ExperimentConfig(**{k: cfg[k] for k in values})
    except Exception as err:  # jsonargparse re-raises construction errors in several types
        raise UsageError("\n".join([*problems, " ".join(str(err).split())])) from None
    from lr_lab.data import DataError, load_csv  # imports Lightning: after --help is answered

    n_rows = None
    if cfg.data.csv_path:
        # Absolute, so that config.yaml (and --resume) work from any folder.
        cfg.data.csv_path = ns["data.csv_path"] = str(Path(cfg.data.csv_path).resolve())
        try:
            x, _ = load_csv(cfg.data.csv_path)
            n_rows = len(x)
        except DataError as err:
            problems.append(str(err))
    problems += check_config(cfg, n_rows)
    if problems:
        raise UsageError("\n".join(problems))
    return cfg, ns


MAX_PARSE_ERRORS = 20


def _parse_collecting(parser: ArgumentParser, argv: list[str]) -> tuple[Namespace, list[str]]:
    """Parse, collecting every type error and unknown option instead of stopping at the first.

    Unknown options are found first, against the parser's keys. jsonargparse then reports one
    type error at a time; after each, the offending command-line option is dropped (its key falls
    back to the config file or default) and parsing is tried again. A bad key or value inside a
    YAML file cannot be stepped over: parsing stops there.

    Returns:
        The namespace (with bad values replaced by defaults) and the problems found.

    Raises:
        UsageError: A problem that cannot be stepped over.
    """
    args, problems = list(argv), []
    keys = set(_known_keys(parser))
    for token in argv:
        option = token.split("=")[0]
        if option.startswith("--") and option[2:] not in keys:
            problems.append(f"{option}: unknown option{_did_you_mean(option[2:], parser)}")
            args = _drop_option(args, option)
    for _ in range(MAX_PARSE_ERRORS):
        try:
            return parser.parse_args(args), problems
        except (ArgumentError, ValueError, TypeError) as err:
            problems.append(_one_line(err, parser))
            text = " ".join(str(err).split())
            if stray := re.search(r"[Uu]nrecognized arguments: (.*)", text):
                tokens = stray.group(1).split()
                args = [a for a in args if a not in tokens]
                continue
            m = re.search(r'Parser key "([\w.]+)":', text)
            option = f"--{m.group(1)}" if m else ""
            if not m or not any(a == option or a.startswith(option + "=") for a in args):
                break  # not a command-line value (e.g. inside a config file): stop here
            args = _drop_option(args, option)
    raise UsageError("\n".join(problems))


def _check_yaml_file(path: Path) -> None:
    """A missing or malformed config file, named, in one line."""
    if not path.is_file():
        raise UsageError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"--config {path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not a text file") from None
    if data is not None and not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of keys, got {type(data).__name__}")


def _check_out_dir(out: Path) -> None:
    """Fail before training if no run folder can be made under ``out`` (tried, not guessed)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write there ({err.strerror or err})") from None


def new_run_dir(out: Path, name: str) -> Path:
    """Create a fresh run folder ``out/<timestamp>-<name>``; never reuse an existing one."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        run_dir = out / (f"{stamp}-{name}" if n == 1 else f"{stamp}-{name}-{n}")
        try:
            run_dir.mkdir()  # atomic: two runs started together get distinct folders
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder in {out}")


def save_config(parser: ArgumentParser, ns: Namespace, path: Path) -> None:
    """Write the resolved experiment config (without run options) as YAML."""
    clean = ns.clone()
    for key in META_KEYS:
        if key in clean:
            del clean[key]
    path.write_text(parser.dump(clean), encoding="utf-8")


def _prepare(argv: list[str]) -> tuple[ExperimentConfig, Namespace, ArgumentParser, Path | None]:
    parser = build_parser()
    resume = _option(argv, "--resume")
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file() or not (run_dir / "results.json").is_file():
            raise UsageError(
                f"--resume {run_dir}: not an lr_lab run folder (needs config.yaml and results.json)"
            )
        rest = _drop_option(argv, "--resume")
        if rest:
            raise UsageError(
                f"--resume {run_dir}: takes no other options (got {' '.join(rest)}); the run keeps its config"
            )
        argv = ["--config", str(run_dir / "config.yaml")]
    cfg, ns = parse_config(argv, parser)
    if ns.init:
        from lr_lab.data import input_dim
        from lr_lab.initial_state import InitStateError, check_fits, read_initial_state
        from lr_lab.trials import build_module

        try:
            state = read_initial_state(Path(ns.init))["state_dict"]
            check_fits(Path(ns.init), state, build_module(cfg, input_dim(cfg.data), 1.0))
        except InitStateError as err:
            raise UsageError(f"--init {err}") from None
    if resume is None:
        _check_out_dir(Path(ns.out))
    return cfg, ns, parser, Path(resume) if resume else None


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _drop_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == name:
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run ``lr-lab`` with ``argv`` (default: the command line) and return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg, ns, parser, resume_dir = _prepare(argv)
    except UsageError as err:
        for line in str(err).splitlines():
            print(f"lr-lab: error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT

    # Heavy imports only once the input is known to be good.
    from lr_lab.data import DataError
    from lr_lab.experiment import new_results, run_experiment
    from lr_lab.initial_state import InitStateError
    from lr_lab.report import answer, format_table, write_report
    from lr_lab.results import read_results, write_results
    from lr_lab.trials import quiet_lightning

    quiet_lightning()
    if resume_dir is not None:
        run_dir = resume_dir
        results = read_results(run_dir)
        init = Path(results.init_source) if results.init_source else None
        print(
            f"lr-lab: resuming {run_dir} ({results.status}): {len(results.trials)} trials done, "
            f"{len(results.pending)} known to be left",
            flush=True,
        )
    else:
        config_name = Path(_option(argv, "--config") or DEFAULT_CONFIG).stem
        run_dir = new_run_dir(Path(ns.out), config_name)
        save_config(parser, ns, run_dir / "config.yaml")
        init = Path(ns.init).resolve() if ns.init else None
        results = new_results(cfg, init)
        print(f"lr-lab: run folder {run_dir}", flush=True)

    with interrupt.stop_on_signals():
        try:
            if results.status == "complete":  # nothing to do: show what it found
                pngs = sorted(run_dir.glob("*.png"))
            else:
                run_experiment(
                    cfg,
                    run_dir,
                    init_path=init,
                    results=results,
                    progress=lambda line: print(line, flush=True),
                )
                interrupt.check()
                # Complete: a Ctrl-C from here on is too late to lose anything; ignore it.
                pngs = write_report(results, run_dir)
        except BaseException as err:
            # However a stop surfaced (our Interrupted, Lightning's SIGTERMException, ...).
            signum = interrupt.requested()
            if signum is None:
                results.status = "failed"
                write_results(run_dir, results)
                if isinstance(err, (InitStateError, DataError)):
                    print(f"lr-lab: error: {err}", file=sys.stderr)
                    return 1
                raise  # a bug: the traceback is what a report needs
            if results.status != "complete":
                results.status = "interrupted"
                write_results(run_dir, results)
            print(
                f"\nlr-lab: interrupted by {signal.Signals(signum).name}; {len(results.trials)} "
                f"finished trials are kept in {run_dir / 'results.json'}, "
                f"{len(results.pending)} left.\nFinish with: lr-lab --resume {run_dir}",
                file=sys.stderr,
            )
            return 128 + signum

    print()
    print(format_table(results))
    print()
    print(answer(results))
    print()
    print(f"Run folder: {run_dir}  (results.json, config.yaml, {', '.join(p.name for p in pngs)})")
    print(f"TensorBoard: tensorboard --logdir {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
