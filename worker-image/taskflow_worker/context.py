"""What a handler sees of the task it runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class PermanentError(Exception):
    """Raise from a handler to fail the task at once, without the remaining retries."""


@dataclass
class TaskContext:
    task_id: str
    queue: str
    namespace: str
    handler: str
    attempt: int
    max_retries: int
    worker: str
    logger: logging.LoggerAdapter[logging.Logger]
    _report: Callable[[str, float, str | None], None] = field(repr=False)
    #: Set on the event loop, read from a sync handler's thread: a plain attribute is enough
    #: (a threading.Event per task cost more than the rest of the task's set-up).
    _cancel_requested: bool = field(default=False, repr=False)

    #: Earlier attempts of this task that failed (lost leases and hand-backs do not count).
    failures: int = 0
    #: A DAG step's run id and step name (None for a plain task).
    run_id: str | None = None
    step: str | None = None
    #: A DAG step's parents' results by step name: ``ctx.parents["fetch"]``.
    parents: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_last_attempt(self) -> bool:
        """True when a failure now leaves no retry (counted in failures, not deliveries)."""
        return self.failures >= self.max_retries

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested: sync handlers should check it and return."""
        return self._cancel_requested

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress (0..1); safe to call from async and sync handlers alike."""
        self._report(self.task_id, min(1.0, max(0.0, float(fraction))), message)
