"""Handlers for worker processes started by the tests (``python -m tests.engine.apps``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from taskflow.config import Settings
from taskflow.keys import QueueRef
from taskflow.logs import configure_logging
from taskflow_worker import Router, TaskContext
from taskflow_worker.runtime import WorkerConfig
from taskflow_worker.serve import serve_worker

router = Router()


@router.task("mark_and_sleep")
async def mark_and_sleep(ctx: TaskContext, payload: dict[str, object]) -> str:
    """Appends a line to ``payload['marker']`` when it starts, then sleeps ``seconds``."""
    with Path(str(payload["marker"])).open("a") as f:
        f.write(f"{ctx.task_id} {ctx.attempt} {ctx.worker}\n")
    await asyncio.sleep(float(payload["seconds"]))  # type: ignore[arg-type]
    return ctx.worker


def main() -> None:
    configure_logging("INFO")
    queue, concurrency, grace = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    settings = Settings.from_env()
    config = WorkerConfig(
        queues=[QueueRef("default", queue)],
        concurrency=concurrency,
        drain_grace=grace,
        name=f"proc-{os.getpid()}",
    )
    asyncio.run(serve_worker(router, settings, config))


if __name__ == "__main__":
    main()
