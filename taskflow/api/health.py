"""Readiness: the gRPC health service follows whether PostgreSQL and Redis answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health, health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from taskflow.errors import Unavailable
from taskflow.waiting import cancel_and_wait

log = logging.getLogger("taskflow.api.health")

TASK_SERVICE = "taskflow.v1.TaskService"
#: The overall server ("") and the task service share one status.
SERVICES = (health.OVERALL_HEALTH, TASK_SERVICE)

CheckReady = Callable[[], Awaitable[None]]


async def readiness(check_ready: CheckReady, timeout: float) -> str | None:
    """None when ready, else why not."""
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation of the
        # task that runs it (the monitor would then outlive the server that stopped it).
        async with asyncio.timeout(timeout):
            await check_ready()
    except TimeoutError:
        return f"storage did not answer within {timeout:g}s"
    except Unavailable as exc:
        return str(exc) or "storage unavailable"
    except Exception as exc:
        log.exception("readiness check failed")
        return f"readiness check failed: {type(exc).__name__}"
    return None


class ReadinessMonitor:
    """Re-checks readiness every ``interval`` seconds and publishes it on the health service."""

    def __init__(
        self,
        check_ready: CheckReady,
        servicer: health_aio.HealthServicer,
        *,
        interval: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        self._check_ready = check_ready
        self._servicer = servicer
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.reason: str | None = "not checked yet"

    async def check(self) -> str | None:
        reason = await readiness(self._check_ready, self._timeout)
        if reason != self.reason:
            if reason is None:
                log.info("ready: PostgreSQL and Redis answer")
            else:
                log.warning("not ready: %s", reason)
        self.reason = reason
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if reason is None
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in SERVICES:
            await self._servicer.set(service, status)
        return reason

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._run(), name="readiness")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self._servicer.enter_graceful_shutdown()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()
