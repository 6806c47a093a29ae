"""Finding the application's router from ``module:object``."""

from __future__ import annotations

import importlib
import os
import sys

from taskflow_worker.router import Router


class AppLoadError(Exception):
    """``--app`` does not name a Router; the message says which part is wrong."""


def load_router(spec: str) -> Router:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"--app: expected MODULE:OBJECT (e.g. myapp.tasks:router), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppLoadError(f"--app: cannot import module {module_name!r}: {exc}") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise AppLoadError(f"--app: module {module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, Router):
        raise AppLoadError(f"--app: {spec} is a {type(obj).__name__}, not a taskflow_worker.Router")
    return obj
