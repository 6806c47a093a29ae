"""Finding code by name at run time.

* ``load_object("myapp.tasks:router")``: the object a ``MODULE:OBJECT`` spec (``--app``)
  names, the module imported from the current directory or the installed packages.
* ``entry_point("taskflow_worker.command", "run_worker", ...)``: a function of a package the
  engine starts but never imports at import time (the worker SDK, the operator), so that the
  engine runs without them installed and says what is missing when a command needs one.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "OPERATOR_MISSING",
    "WORKER_ENTRY",
    "WORKER_MISSING",
    "AppLoadError",
    "NotInstalledError",
    "entry_point",
    "load_object",
    "operator_entry",
    "worker_entry",
]

WORKER_ENTRY = "taskflow_worker.command"
"""The module of the worker package that ``taskflow worker`` and ``taskflow dev`` call."""
WORKER_MISSING = (
    "the worker needs the taskflow_worker package, which is not installed; install the "
    "taskflow distribution with its worker SDK, or run workers from the worker image"
)
OPERATOR_MISSING = (
    "the operator needs a Kubernetes cluster and the taskflow_operator package, which "
    "is not installed; run 'taskflow dev' locally, or see the deployment docs"
)


class AppLoadError(Exception):
    """A ``MODULE:OBJECT`` spec does not name what it should; the message names the flag and
    says which part is wrong."""


class NotInstalledError(Exception):
    """A command needs a package that is not installed; the message says what to do."""


def load_object(spec: str, flag: str = "--app") -> object:
    """The object ``spec`` (``module:attribute``, the attribute may be dotted) names.

    The current directory comes first on the import path, as for ``python -m``. Raises
    ``AppLoadError`` naming ``flag`` when the spec is malformed, the module cannot be imported
    or it has no such attribute.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(
            f"{flag}: expected MODULE:OBJECT (e.g. myapp.tasks:router), got {spec!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"{flag}: cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"{flag}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    return obj


def entry_point(module: str, name: str, missing: str) -> Callable[..., Any]:
    """The function ``name`` of ``module``, imported now.

    Raises ``NotInstalledError(missing)`` when the module's package is not installed. Any
    other import failure (a dependency of an installed package is missing) raises
    ``NotInstalledError`` naming what could not be imported.
    """
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(f"{exc.name}.")):
            raise NotInstalledError(missing) from None
        raise NotInstalledError(f"cannot import {module}: {exc}") from None
    function = getattr(loaded, name, None)
    if not callable(function):
        raise NotInstalledError(f"{module} has no {name}(); this installation is incomplete")
    found: Callable[..., Any] = function
    return found


def worker_entry(name: str) -> Callable[..., Any]:
    """The function ``name`` of the worker package's command module (``run_worker``,
    ``check_app``); ``NotInstalledError`` when the worker package is not installed."""
    return entry_point(WORKER_ENTRY, name, WORKER_MISSING)


def operator_entry() -> Callable[..., Any]:
    """``taskflow_operator.main``; ``NotInstalledError`` when the operator is not installed."""
    return entry_point("taskflow_operator", "main", OPERATOR_MISSING)
