"""What a config's ``class_path`` names: a class, a function or a classmethod, imported.

Imports nothing heavy itself (what a path names imports what it needs).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from lr_lab.errors import ProviderError


def import_object(path: str, key: str) -> Any:
    """Import ``pkg.module.Name`` (or ``pkg.module.Class.method``) from the current folder too.

    Raises:
        ProviderError: Not a dotted path, not importable, or no such name (one line, the key).
    """
    parts = path.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ProviderError(f"{key} = {path!r}: expected a dotted path like mypkg.nets.Net")
    if os.getcwd() not in sys.path:
        # The current folder, as `python -m` has it (an installed lr-lab script lacks it).
        sys.path.insert(0, os.getcwd())
    error: BaseException | None = None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name) and cut > 1:
                error = error or err
                continue  # pkg.Class.method: pkg.Class is no module, pkg is
            raise _import_error(path, key, module_name, err) from None
        except SystemExit as err:  # a script's sys.exit() at import (a Ctrl-C stays an interrupt)
            code = "" if err.code is None else repr(err.code)
            raise ProviderError(
                f"{key} = {path!r}: importing {module_name}: it called sys.exit({code})"
            ) from None
        except Exception as err:  # anything the user's module raises on import
            raise _import_error(path, key, module_name, err) from None
        for i, name in enumerate(parts[cut:], start=cut):
            if not hasattr(obj, name):
                raise ProviderError(f"{key} = {path!r}: {'.'.join(parts[:i])} has no {name!r}")
            obj = getattr(obj, name)
        return obj
    raise _import_error(path, key, parts[0], error)


def _import_error(path: str, key: str, module: str, err: BaseException | None) -> ProviderError:
    first = (str(err).strip().splitlines() or [""])[0] if err else "not found"
    kind = type(err).__name__ if err else "ModuleNotFoundError"
    return ProviderError(
        f"{key} = {path!r}: cannot import {module} ({kind}: {first}); is it in the current "
        "folder or on PYTHONPATH?"
    )


def qualified_name(obj: Any) -> str:
    """``pkg.module.Name`` of a class or function (of an object: of its class)."""
    target = obj if inspect.isclass(obj) or inspect.isroutine(obj) else type(obj)
    owner = getattr(target, "__self__", None)  # a classmethod: pkg.module.Class.method
    if inspect.isclass(owner):
        return f"{owner.__module__}.{owner.__qualname__}.{target.__name__}"
    return f"{target.__module__}.{target.__qualname__}"
