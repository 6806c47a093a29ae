"""The server commands: ``dev``, ``api``, ``worker``, ``operator`` and ``migrate``.

Each takes the parsed arguments and returns an exit code; bad input raises ``UsageError``,
an unreachable store ``CommandError``. Heavy imports wait until a command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskflow import eventloop
from taskflow.cli.errors import CommandError, UsageError, first_line, loop_factory, unreachable

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


def _check_dashboard_env() -> None:
    """The dashboard's settings (``TASKFLOW_DASHBOARD_*``), checked before a server starts."""
    from taskflow.dashboard import DashboardSettings

    try:
        DashboardSettings.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _tracing(args: argparse.Namespace, service: str) -> None:
    """OpenTelemetry tracing for this process, when ``--tracing`` or ``OTEL_*`` ask for it."""
    from taskflow.telemetry.tracing import TracingUnavailable, setup_tracing

    try:
        setup_tracing(service, force=args.tracing)
    except (TracingUnavailable, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _dev(args: argparse.Namespace) -> int:
    _require_extra("dev", "api")
    _check_dashboard_env()
    if args.tracing:  # the worker processes inherit it
        os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")
    _tracing(args, "taskflow-dev")
    from taskflow.dev import DEFAULT_APP, DevOptions, run_dev
    from taskflow.devserver.services import PortInUseError
    from taskflow.embedded import EmbeddedServerError
    from taskflow.errors import AlreadyExists, InvalidArgument, PayloadTooLarge, Unavailable
    from taskflow.loading import AppLoadError, NotInstalledError
    from taskflow.scheduling.files import ScheduleFileError

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
    except (AppLoadError, PortInUseError, NotInstalledError) as exc:
        raise UsageError(str(exc)) from None
    except (ScheduleFileError, InvalidArgument, PayloadTooLarge, AlreadyExists) as exc:
        raise UsageError(f"--schedules: {exc}") from None
    except (EmbeddedServerError, Unavailable) as exc:
        raise CommandError(str(exc)) from None


def _api(args: argparse.Namespace) -> int:
    _require_extra("api", "api")
    _check_dashboard_env()
    _tracing(args, "taskflow-api")
    from dataclasses import replace

    from taskflow.api.tls import TlsConfig, TlsError
    from taskflow.api.tokens import TokenFileError, TokenRegistry
    from taskflow.devserver.services import ApiServices, PortInUseError, check_ports
    from taskflow.errors import Unavailable

    settings = _settings()
    overrides = {
        "api_tokens_file": args.tokens_file,
        "api_tls_cert": args.tls_cert,
        "api_tls_key": args.tls_key,
        "api_tls_client_ca": args.tls_client_ca,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    try:
        tokens = TokenRegistry(settings.api_token, settings.api_tokens_file or None)
        tls = TlsConfig.from_paths(
            settings.api_tls_cert, settings.api_tls_key, settings.api_tls_client_ca
        )
    except (TokenFileError, TlsError) as exc:
        raise UsageError(str(exc)) from None
    http_host = args.http_host or (args.host if tokens.enabled else "127.0.0.1")
    try:
        check_ports(args.host, {"--grpc-port": args.grpc_port})
        check_ports(http_host, {"--http-port": args.http_port})
    except PortInUseError as exc:
        raise UsageError(str(exc)) from None
    if not tokens.enabled:
        logging.getLogger("taskflow.api").warning(
            "no API token configured: every caller may use every namespace "
            "(set TASKFLOW_API_TOKEN or --tokens-file)"
        )
    services = ApiServices(
        settings,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        http_host=http_host,
        housekeeping=args.housekeeping,
        tokens=tokens,
        tls=tls,
        reflection=args.reflection,
        open_probes=args.open_probes,
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

    factory = loop_factory()
    try:
        eventloop.run(serve(), factory)
    except Unavailable as exc:
        raise CommandError(f"cannot reach the store: {exc}") from None
    return 0


def _worker(args: argparse.Namespace) -> int:
    from taskflow.loading import worker_entry

    run_worker = _installed(lambda: worker_entry("run_worker"))
    _tracing(args, "taskflow-worker")
    return int(
        run_worker(
            app=args.app,
            namespace=args.namespace,
            queues=args.queues or ["default"],
            concurrency=args.concurrency,
            drain_grace=args.drain_grace,
            health_port=args.health_port,
            health_host=args.health_host,
            watch_parent=args.watch_parent,
        )
    )


def _operator(args: argparse.Namespace) -> int:
    from taskflow.loading import operator_entry

    run_operator = _installed(operator_entry)
    _require_extra("operator", "operator")
    return int(run_operator(list(args.operator_args)) or 0)


def _installed(find: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """The entry point ``find`` returns; ``UsageError`` when its package is not installed."""
    from taskflow.loading import NotInstalledError

    try:
        return find()
    except NotInstalledError as exc:
        raise UsageError(str(exc)) from None


def _migrate(args: argparse.Namespace) -> int:
    import psycopg

    from taskflow.store import apply_migrations

    url = args.database_url or _settings().database_url
    try:
        applied = asyncio.run(apply_migrations(url))
    except psycopg.OperationalError as exc:
        raise unreachable("PostgreSQL", url, exc) from None
    except psycopg.Error as exc:
        raise CommandError(f"migration failed: {first_line(exc)}") from None
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


SERVER_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dev": _dev,
    "api": _api,
    "worker": _worker,
    "operator": _operator,
    "migrate": _migrate,
}
