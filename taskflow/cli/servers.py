"""The server commands: ``dev``, ``api``, ``worker``, ``operator`` and ``migrate``.

Each takes the parsed arguments and returns an exit code; bad input raises ``UsageError``,
an unreachable store ``CommandError``. Heavy imports wait until a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskflow.cli.errors import CommandError, UsageError

if TYPE_CHECKING:
    from taskflow.config import Settings


# Modules that each extra of the distribution brings (pyproject.toml), checked before a server
# command imports them so that a missing extra is one line, not a traceback.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "api": ("grpc_health", "grpc_reflection", "prometheus_client"),
    "operator": ("kopf", "kubernetes", "prometheus_client"),
}


def _require_extra(command: str, extra: str) -> None:
    missing = [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"'taskflow {command}' needs the {extra} extra ({', '.join(missing)} not "
            f"installed): pip install 'taskflow[{extra}]'"
        )


def _settings() -> Settings:
    from taskflow.config import Settings

    try:
        return Settings.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _dev(args: argparse.Namespace) -> int:
    _require_extra("dev", "api")
    from taskflow.dev import DEFAULT_APP, DevOptions, run_dev
    from taskflow.devserver.services import PortInUseError
    from taskflow.embedded import EmbeddedServerError
    from taskflow.errors import AlreadyExists, InvalidArgument, PayloadTooLarge, Unavailable
    from taskflow.scheduling.files import ScheduleFileError
    from taskflow_worker.loading import AppLoadError

    options = DevOptions(
        workers=args.workers,
        app=args.app or DEFAULT_APP,
        queues=args.queues or ["default"],
        namespace=args.namespace,
        data_dir=args.data_dir,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        concurrency=args.concurrency,
        drain_grace=args.drain_grace,
        demo=args.demo,
        schedules=args.schedules,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    try:
        return run_dev(options)
    except (AppLoadError, PortInUseError) as exc:
        raise UsageError(str(exc)) from None
    except (ScheduleFileError, InvalidArgument, PayloadTooLarge, AlreadyExists) as exc:
        raise UsageError(f"--schedules: {exc}") from None
    except (EmbeddedServerError, Unavailable) as exc:
        raise CommandError(str(exc)) from None


def _api(args: argparse.Namespace) -> int:
    _require_extra("api", "api")
    from taskflow.devserver.services import ApiServices, PortInUseError, check_ports
    from taskflow.errors import Unavailable

    try:
        check_ports(args.host, {"--grpc-port": args.grpc_port, "--http-port": args.http_port})
    except PortInUseError as exc:
        raise UsageError(str(exc)) from None
    services = ApiServices(
        _settings(),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        housekeeping=args.housekeeping,
    )

    async def serve() -> None:
        stop = _stop_on_signals()
        await services.start()
        logging.getLogger("taskflow.api").info(
            "housekeeping %s", "runs in this process" if args.housekeeping else "is off"
        )
        try:
            await stop.wait()
        finally:
            await services.stop(grace=10.0)

    try:
        asyncio.run(serve())
    except Unavailable as exc:
        raise CommandError(f"cannot reach the store: {exc}") from None
    return 0


def _worker(args: argparse.Namespace) -> int:
    import psycopg
    import redis.exceptions

    from taskflow.keys import QueueRef
    from taskflow_worker.loading import AppLoadError, load_router
    from taskflow_worker.runtime import WorkerConfig
    from taskflow_worker.serve import serve_worker

    try:
        router = load_router(args.app)
    except AppLoadError as exc:
        raise UsageError(str(exc)) from None
    if not len(router):
        raise UsageError(f"--app: {args.app} registers no handlers")
    settings = _settings()
    config = WorkerConfig(
        queues=[QueueRef(args.namespace, q) for q in args.queues or ["default"]],
        concurrency=args.concurrency,
        drain_grace=args.drain_grace,
    )
    if args.watch_parent is not None:
        _exit_with_parent(args.watch_parent)
    try:
        asyncio.run(serve_worker(router, settings, config, health_port=args.health_port))
    except psycopg.OperationalError as exc:
        where = _host_of(settings.database_url)
        raise CommandError(f"cannot reach PostgreSQL at {where}: {_first_line(exc)}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        where = _host_of(settings.redis_url)
        raise CommandError(f"cannot reach Redis at {where}: {_first_line(exc)}") from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _operator(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module("taskflow_operator")
    except ImportError:
        raise UsageError(
            "the operator needs a Kubernetes cluster and the taskflow_operator package, which "
            "is not installed; run 'taskflow dev' locally, or see the deployment docs"
        ) from None
    _require_extra("operator", "operator")
    run = getattr(module, "main", None)
    if not callable(run):
        raise CommandError("taskflow_operator has no main(); this installation is incomplete")
    return int(run(list(args.operator_args)) or 0)


def _migrate(args: argparse.Namespace) -> int:
    import psycopg

    from taskflow.store import apply_migrations

    url = args.database_url or _settings().database_url
    try:
        applied = asyncio.run(apply_migrations(url))
    except psycopg.OperationalError as exc:
        where = _host_of(url)
        raise CommandError(f"cannot reach PostgreSQL at {where}: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise CommandError(f"migration failed: {_first_line(exc)}") from None
    for mig in applied:
        print(f"applied {mig.version:04d}_{mig.name}")
    if not applied:
        print("database is up to date; nothing to apply")
    return 0


def _stop_on_signals() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _exit_with_parent(parent: int) -> None:
    """SIGTERM this process (a clean drain) once ``parent`` is gone, e.g. killed outright."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _host_of(url: str) -> str:
    """``host:port`` of a server URL, without the credentials."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "the configured URL"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


SERVER_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dev": _dev,
    "api": _api,
    "worker": _worker,
    "operator": _operator,
    "migrate": _migrate,
}
