"""Finding the application's router from ``module:object`` (``--app``)."""

from __future__ import annotations

from taskflow.loading import AppLoadError, load_object
from taskflow_worker.router import Router

__all__ = ["AppLoadError", "load_router"]


def load_router(spec: str) -> Router:
    """The ``Router`` that ``spec`` names; ``AppLoadError`` naming ``--app`` otherwise."""
    obj = load_object(spec, "--app")
    if not isinstance(obj, Router):
        raise AppLoadError(f"--app: {spec} is a {type(obj).__name__}, not a taskflow_worker.Router")
    return obj
