"""The command line's words, before parsing: an option's value, an option dropped.

Imports nothing heavy: the run options are read before anything else loads.
"""

from __future__ import annotations

from lr_lab.errors import UsageError


def option_value(argv: list[str], name: str) -> str | None:
    """The value given to option ``name`` (last one wins), or None."""
    found = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
    return found


def drop_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without option ``name`` and its value."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == name:
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("--")
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def print_config_option(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--print_config`` / ``--print_config=skip_check`` taken out of ``argv``."""
    mode = None
    rest = []
    for arg in argv:
        if arg == "--print_config":
            mode = "check"
        elif arg.startswith("--print_config="):
            mode = arg.split("=", 1)[1]
            if mode != "skip_check":
                raise UsageError(f"--print_config={mode}: unknown mode (only skip_check)")
        else:
            rest.append(arg)
    return mode, rest
