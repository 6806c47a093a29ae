"""Running a worker as a process: signals, health endpoint, logs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from taskflow.config import Settings
from taskflow_worker.metrics import WorkerMetrics
from taskflow_worker.router import Router
from taskflow_worker.runtime import Worker, WorkerConfig


def health_app(worker: Worker) -> web.Application:
    """``/healthz`` (alive, with counters), ``/readyz`` (503 while draining) and ``/metrics``
    (Prometheus)."""
    metrics = WorkerMetrics(worker)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "worker": worker.config.name,
                "in_flight": len(worker.inflight),
                "abandoned": worker.abandoned,
                "claimed": worker.claimed_total,
                "finished": worker.finished_total,
                "draining": worker.draining,
            }
        )

    async def readyz(_: web.Request) -> web.Response:
        status = 503 if worker.draining else 200
        return web.json_response({"draining": worker.draining}, status=status)

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_worker(
    router: Router,
    settings: Settings,
    config: WorkerConfig,
    *,
    health_port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain and return.

    A handler that ignored cancellation and is still running when the drain is over does not
    keep the process alive: its outcome was already reported, so the process exits anyway.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(router, settings, config)
    runner: web.AppRunner | None = None
    if health_port is not None:
        runner = web.AppRunner(health_app(worker), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", health_port).start()
    try:
        await worker.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
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
