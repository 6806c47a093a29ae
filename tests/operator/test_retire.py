"""A deleted TaskQueue's unfinished tasks are cancelled; other queues' and finished ones stay."""

from __future__ import annotations

from typing import Any, cast

from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TaskState, validate_submission
from taskflow_operator.context import OperatorContext
from taskflow_operator.reconcile.retire import PAGE, cancel_unfinished


class Holder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine


async def submit(engine: Engine, queue: str, n: int, **extra: Any) -> list[str]:
    specs = [
        validate_submission({"namespace": "team", "queue": queue, "handler": "h", **extra})
        for _ in range(n)
    ]
    return [r.task_id for r in await engine.submit(specs)]


async def test_unfinished_tasks_of_the_queue_are_cancelled(engine: Engine) -> None:
    waiting = await submit(engine, "gone", PAGE + 3)  # more than a page
    later = await submit(engine, "gone", 1, delay_seconds=3600)
    other = await submit(engine, "stays", 2)
    ctx = cast(OperatorContext, Holder(engine))
    assert await cancel_unfinished(ctx, QueueRef("team", "gone")) == PAGE + 4
    for task_id in waiting + later:
        assert (await engine.get(task_id)).state is TaskState.CANCELLED
    for task_id in other:
        assert (await engine.get(task_id)).state is TaskState.QUEUED
    stats = await engine.queue_stats(QueueRef("team", "gone"))
    assert (stats.ready, stats.scheduled) == (0, 0)
    assert await cancel_unfinished(ctx, QueueRef("team", "gone")) == 0
