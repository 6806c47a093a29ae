"""Batched writes of claims, attempt results and progress to PostgreSQL.

Workers never write one row per task: everything reported within a flush goes out in one
transaction. Nothing is dropped when PostgreSQL is briefly unavailable: the batch is kept
and written again with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from taskflow.models import AttemptResult
from taskflow.store.tasks import Claim, TaskStore

log = logging.getLogger("taskflow.recording")


class ResultRecorder:
    def __init__(self, store: TaskStore, *, linger: float = 0.002) -> None:
        self._store = store
        self.linger = linger
        self._claims: list[Claim] = []
        self._results: list[AttemptResult] = []
        self._progress: dict[str, tuple[float, str | None]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="result-recorder")

    def claim(self, task_id: str, attempt: int, worker: str, started_at: datetime) -> None:
        self._claims.append(Claim(task_id, attempt, worker, started_at))
        self._poke()

    def result(self, result: AttemptResult) -> None:
        self._results.append(result)
        self._poke()

    def progress(self, task_id: str, fraction: float, message: str | None) -> None:
        self._progress[task_id] = (fraction, message)
        self._poke()

    @property
    def pending(self) -> int:
        return len(self._claims) + len(self._results) + len(self._progress)

    def _poke(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def flushed(self) -> None:
        """Wait until everything reported so far is committed."""
        while self.pending:
            self._wake.set()
            await self._idle.wait()

    async def close(self) -> None:
        await self.flushed()
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        backoff = 0.05
        while not (self._closing and not self.pending):
            await self._wake.wait()
            self._wake.clear()
            if not self._closing:
                await asyncio.sleep(self.linger)  # let a few more results join this batch
            while self.pending:
                # Everything at once: a result must never be written before its claim.
                claims, self._claims = self._claims, []
                results, self._results = self._results, []
                progress, self._progress = self._progress, {}
                try:
                    await self._store.record_batch(claims, results, progress)
                    backoff = 0.05
                except Exception as exc:
                    log.warning(
                        "recording %d item(s) failed, retrying: %s", len(claims) + len(results), exc
                    )
                    self._claims[:0] = claims
                    self._results[:0] = results
                    for k, v in progress.items():
                        self._progress.setdefault(k, v)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
            self._idle.set()
