"""Running a worker as a process: signals, health endpoint, logs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from taskflow.config import Settings
from taskflow_worker.health import HealthServer
from taskflow_worker.router import Router
from taskflow_worker.runtime import Worker, WorkerConfig


async def serve_worker(
    router: Router,
    settings: Settings,
    config: WorkerConfig,
    *,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain and return. With ``health_port``,
    ``/healthz``, ``/readyz`` (503 while draining) and ``/metrics`` are served there.

    A handler that ignored cancellation and is still running when the drain is over does not
    keep the process alive: its outcome was already reported, so the process exits anyway.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(router, settings, config)
    health: HealthServer | None = None
    if health_port is not None:
        health = HealthServer(worker, health_host, health_port)
        await health.start()
    try:
        await worker.run(stop)
    finally:
        if health is not None:
            await health.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if worker.abandoned:
        logging.getLogger("taskflow.worker").warning(
            "exiting with %d handler(s) that never stopped", worker.abandoned
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
