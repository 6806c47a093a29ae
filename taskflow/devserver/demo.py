"""``taskflow dev --demo``: a realistic mix of example tasks every second, and one line of
queue counters per second, so that a first run shows tasks flowing.

The tasks go through the public API like any application's, and name the handlers of
``taskflow_worker.examples``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from taskflow_client import AsyncClient, QueueStats, TaskFlowError, TaskRequest, TaskState

log = logging.getLogger("taskflow.dev")

#: Handler, tasks per second on average, payload factory. About 25 tasks a second in all.
_MIX: list[tuple[str, float]] = [
    ("send_email", 8),
    ("add", 5),
    ("noop", 4),
    ("resize_image", 3),
    ("flaky", 3),
    ("generate_report", 1),
    ("sleep", 1),
]
_FAIL_EVERY = 10
"""One task that always fails every this many seconds, to fill the dead-letter view."""
_RETRYING_CAP = 1000


def _payload(handler: str, n: int) -> Any:
    if handler == "send_email":
        return {"to": f"user{n}@example.com", "subject": f"Your order #{1000 + n}"}
    if handler == "add":
        return {"a": random.randint(0, 100), "b": random.randint(0, 100)}
    if handler == "resize_image":
        return {"image": f"photo-{n}.jpg", "sizes": [64, 256, 1024]}
    if handler == "flaky":
        return {"probability": 0.3}
    if handler == "generate_report":
        return {"name": random.choice(["daily", "weekly", "churn"]), "rows": 5000}
    if handler == "sleep":
        return {"seconds": round(random.uniform(0.5, 3.0), 1)}
    return None


def demo_batch(queue: str, tick: int, start: int) -> list[TaskRequest]:
    """The tasks of one second of the demo (``start`` numbers them)."""
    tasks: list[TaskRequest] = []
    for handler, rate in _MIX:
        count = int(rate) + (1 if random.random() < rate - int(rate) else 0)
        count = max(0, count + random.choice((-1, 0, 0, 1)))
        for _ in range(count):
            n = start + len(tasks)
            tasks.append(
                TaskRequest(
                    queue=queue,
                    handler=handler,
                    payload=_payload(handler, n),
                    priority=5 if handler == "send_email" else 0,
                    max_retries=4 if handler == "flaky" else None,
                )
            )
    if tick % _FAIL_EVERY == 0:
        tasks.append(TaskRequest(queue=queue, handler="fail", payload={"message": "card declined"}))
    random.shuffle(tasks)
    return tasks


@dataclass
class _Totals:
    succeeded: int = 0
    failed: int = 0
    ready: int = 0
    running: int = 0


def _sum(stats: Sequence[QueueStats]) -> _Totals:
    return _Totals(
        succeeded=sum(s.succeeded for s in stats),
        failed=sum(s.failed for s in stats),
        ready=sum(s.ready for s in stats),
        running=sum(s.running for s in stats),
    )


class Demo:
    """Submits to the first queue; counts over every queue of ``taskflow dev``."""

    def __init__(self, target: str, namespace: str, queues: Sequence[str], out: TextIO) -> None:
        self.target = target
        self.namespace = namespace
        self.queues = list(queues)
        self.out = out
        self.submitted = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with AsyncClient(self.target, namespace=self.namespace, timeout=10) as client:
            base = await self._totals(client)
            tick = 0
            next_at = time.monotonic()
            while not stop.is_set():
                tick += 1
                try:
                    batch = demo_batch(self.queues[0], tick, self.submitted)
                    await client.submit_many(batch)
                    self.submitted += len(batch)
                    now = await self._totals(client)
                    retrying = await self._retrying(client)
                except TaskFlowError as exc:
                    log.warning("demo: %s", exc)
                else:
                    self._line(base, now, retrying)
                next_at += 1.0
                delay = max(0.0, next_at - time.monotonic())
                if delay == 0.0:
                    next_at = time.monotonic()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    continue

    async def _totals(self, client: AsyncClient) -> _Totals:
        return _sum([await client.queue_stats(q) for q in self.queues])

    async def _retrying(self, client: AsyncClient) -> int:
        total = 0
        for queue in self.queues:
            tasks, _ = await client.list_tasks_page(
                queue, [TaskState.RETRYING], page_size=_RETRYING_CAP
            )
            total += len(tasks)
        return total

    def _line(self, base: _Totals, now: _Totals, retrying: int) -> None:
        print(
            f"{time.strftime('%H:%M:%S')}  submitted {self.submitted}"
            f"  succeeded {now.succeeded - base.succeeded}"
            f"  failed {now.failed - base.failed}"
            f"  retrying {retrying}{'+' if retrying >= _RETRYING_CAP else ''}"
            f"  ready {now.ready}  running {now.running}",
            file=self.out,
            flush=True,
        )
