"""``taskflow dev --demo``: a realistic mix of example tasks every second, and a compact table
of queue counters redrawn every second (one line per second when the output is not a
terminal), so that a first run shows tasks flowing.

The tasks go through the public API like any application's, and name the handlers of
``taskflow_worker.examples``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from taskflow.waiting import stopped_within
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


@dataclass(frozen=True)
class QueueRow:
    """One queue in the demo's table: its counters since the demo started."""

    queue: str
    submitted: int
    ready: int
    running: int
    retrying: int
    succeeded: int
    failed: int
    per_second: float  # tasks that ended per second, over the last tick
    retrying_capped: bool = False


def _ended(s: QueueStats) -> int:
    return s.succeeded + s.failed + s.cancelled


class Demo:
    """Submits to the first queue; shows every queue of ``taskflow dev``: a table redrawn in
    place on a terminal, one line per second otherwise (a log, a pipe)."""

    def __init__(
        self,
        target: str,
        namespace: str,
        queues: Sequence[str],
        out: TextIO,
        *,
        dashboard_url: str | None = None,
        live: bool | None = None,
    ) -> None:
        self.target = target
        self.namespace = namespace
        self.queues = list(queues)
        self.out = out
        self.dashboard_url = dashboard_url
        self.live = out.isatty() if live is None else live
        self.submitted = 0

    async def run(self, stop: asyncio.Event) -> None:
        view: _View = _LiveTable(self.out, self.dashboard_url) if self.live else _Lines(self.out)
        async with AsyncClient(self.target, namespace=self.namespace, timeout=10) as client:
            base = await self._stats(client)
            last, last_at = base, time.monotonic()
            tick = 0
            next_at = time.monotonic()
            with view:
                while not stop.is_set():
                    tick += 1
                    try:
                        batch = demo_batch(self.queues[0], tick, self.submitted)
                        await client.submit_many(batch)
                        self.submitted += len(batch)
                        now = await self._stats(client)
                        retrying = await self._retrying(client)
                    except TaskFlowError as exc:
                        log.warning("demo: %s", exc)
                    else:
                        at = time.monotonic()
                        view.show(self._rows(base, last, now, retrying, at - last_at))
                        last, last_at = now, at
                    next_at += 1.0
                    delay = max(0.0, next_at - time.monotonic())
                    if delay == 0.0:
                        next_at = time.monotonic()
                    await stopped_within(stop, delay)

    def _rows(
        self,
        base: dict[str, QueueStats],
        last: dict[str, QueueStats],
        now: dict[str, QueueStats],
        retrying: dict[str, int],
        seconds: float,
    ) -> list[QueueRow]:
        rows = []
        for queue in self.queues:
            b, prev, cur = base[queue], last[queue], now[queue]
            ended = max(0, _ended(cur) - _ended(prev))
            rows.append(
                QueueRow(
                    queue=queue,
                    submitted=self.submitted if queue == self.queues[0] else 0,
                    ready=cur.ready,
                    running=cur.running,
                    retrying=retrying[queue],
                    succeeded=cur.succeeded - b.succeeded,
                    failed=cur.failed - b.failed,
                    per_second=ended / seconds if seconds > 0 else 0.0,
                    retrying_capped=retrying[queue] >= _RETRYING_CAP,
                )
            )
        return rows

    async def _stats(self, client: AsyncClient) -> dict[str, QueueStats]:
        return {q: await client.queue_stats(q) for q in self.queues}

    async def _retrying(self, client: AsyncClient) -> dict[str, int]:
        counts = {}
        for queue in self.queues:
            tasks, _ = await client.list_tasks_page(
                queue, [TaskState.RETRYING], page_size=_RETRYING_CAP
            )
            counts[queue] = len(tasks)
        return counts


class _View:
    def show(self, rows: Sequence[QueueRow]) -> None:
        raise NotImplementedError

    def __enter__(self) -> _View:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Lines(_View):
    """One line per second of every queue together (what a log or a pipe gets)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def show(self, rows: Sequence[QueueRow]) -> None:
        retrying = sum(r.retrying for r in rows)
        capped = "+" if any(r.retrying_capped for r in rows) else ""
        print(
            f"{time.strftime('%H:%M:%S')}  submitted {sum(r.submitted for r in rows)}"
            f"  succeeded {sum(r.succeeded for r in rows)}"
            f"  failed {sum(r.failed for r in rows)}"
            f"  retrying {retrying}{capped}"
            f"  ready {sum(r.ready for r in rows)}  running {sum(r.running for r in rows)}"
            f"  done/s {sum(r.per_second for r in rows):.0f}",
            file=self.out,
            flush=True,
        )


COLUMNS = ("QUEUE", "SUBMITTED", "READY", "RUNNING", "RETRYING", "SUCCEEDED", "FAILED", "DONE/S")


def demo_table(rows: Sequence[QueueRow], dashboard_url: str | None = None) -> Any:
    """The demo's table (a ``rich`` renderable): one row per queue, totals since the start."""
    from rich.table import Table

    caption = f"dashboard {dashboard_url}" if dashboard_url else None
    table = Table(
        title=f"TaskFlow demo  {time.strftime('%H:%M:%S')}",
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(
            r.queue,
            str(r.submitted),
            str(r.ready),
            str(r.running),
            f"{r.retrying}{'+' if r.retrying_capped else ''}",
            f"[green]{r.succeeded}[/]",
            f"[red]{r.failed}[/]" if r.failed else "0",
            f"{r.per_second:.0f}",
        )
    return table


class _LiveTable(_View):
    """The table redrawn in place; log lines print above it instead of tearing it."""

    def __init__(self, out: TextIO, dashboard_url: str | None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.dashboard_url = dashboard_url
        self.console = Console(file=out)
        # Logs go to stderr: when it is the same terminal, they print above the table.
        self.redirect = bool(sys.__stderr__ and sys.__stderr__.isatty())
        self.live = Live(console=self.console, auto_refresh=False, redirect_stderr=self.redirect)
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> _View:
        self.live.start()
        # Live replaced sys.stderr with a proxy that prints above the table; the log handlers
        # hold the real stream, so point them at the proxy while the table is shown.
        for handler in logging.getLogger().handlers if self.redirect else []:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stderr__:
                self._streams.append((handler, handler.setStream(sys.stderr)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams.clear()
        self.live.stop()

    def show(self, rows: Sequence[QueueRow]) -> None:
        self.live.update(demo_table(rows, self.dashboard_url), refresh=True)
