"""``taskflow worker``: where the command line enters the worker package.

The engine package reaches these functions by name (``taskflow.loading.entry_point``), so it
never imports the worker package itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
import redis.exceptions

from taskflow import eventloop
from taskflow.cli.errors import CommandError, UsageError, loop_factory, unreachable
from taskflow.config import Settings
from taskflow.embedded import PORT_IN_USE, port_unavailable
from taskflow.keys import QueueRef
from taskflow.loading import AppLoadError
from taskflow.tether import STOP_MARGIN, follow_parent
from taskflow_worker.loading import load_router
from taskflow_worker.router import Router
from taskflow_worker.runtime import WorkerConfig
from taskflow_worker.serve import serve_worker

__all__ = ["check_app", "run_worker"]


def check_app(app: str) -> Router:
    """The router ``app`` names, with at least one handler; ``AppLoadError`` otherwise."""
    router = load_router(app)
    if not len(router):
        raise AppLoadError(f"--app: {app} registers no handlers")
    return router


def run_worker(
    *,
    app: str,
    namespace: str,
    queues: Sequence[str],
    concurrency: int,
    drain_grace: float,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",
    watch_parent: int | None = None,
) -> int:
    """Run a worker until SIGTERM/SIGINT, then drain; 0 after a clean stop.

    With ``watch_parent`` the worker also stops when that process ends (``taskflow dev``
    killed outright), and is killed if its drain outlasts ``drain_grace``. Raises
    ``UsageError`` for a bad ``app``, settings or health address, ``CommandError`` for an
    unreachable store.
    """
    try:
        router = check_app(app)
    except AppLoadError as exc:
        raise UsageError(str(exc)) from None
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = WorkerConfig(
        queues=[QueueRef(namespace, q) for q in queues or ["default"]],
        concurrency=concurrency,
        drain_grace=drain_grace,
    )
    factory = loop_factory()
    if health_port is not None:
        _check_health_address(health_host, health_port)
    if watch_parent is not None:
        follow_parent(watch_parent, grace=drain_grace + STOP_MARGIN)
    try:
        serving = serve_worker(
            router, settings, config, health_port=health_port, health_host=health_host
        )
        eventloop.run(serving, factory)
    except psycopg.OperationalError as exc:
        raise unreachable("PostgreSQL", settings.database_url, exc) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise unreachable("Redis", settings.redis_url, exc) from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _check_health_address(host: str, port: int) -> None:
    """A ``UsageError`` naming the flag when the health endpoint cannot listen on host:port
    (a taken port, a name that does not resolve, an address of another machine)."""
    reason = port_unavailable(host, port)
    if reason is not None:
        flag = "--health-port" if reason == PORT_IN_USE else "--health-host"
        raise UsageError(f"{flag}: cannot listen on {host}:{port}: {reason}")
