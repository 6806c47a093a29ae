"""What a TaskQueue tells ``kubectl describe``: Events, few and meaningful.

* A failure (the API server refuses the Deployment, KEDA is missing, the engine is down) is
  one Warning Event when it starts or changes, not one per pass; passes that keep failing back
  off (``poll * 2^n``, at most ``MAX_BACKOFF_SECONDS``); a pass that succeeds again is one
  Normal ``Recovered`` Event and wakes the queue's loop at once.
* Scale changes are Normal ``Scaled`` Events, at most one per ``SCALED_EVENT_SECONDS`` per
  queue: changes in between are coalesced into the next one ("2 -> 5 -> 0 replicas").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_BACKOFF_SECONDS = 300.0
SCALED_EVENT_SECONDS = 30.0
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Failure:
    reason: str  # CamelCase, the Degraded condition's and the Warning Event's reason
    message: str

    @property
    def text(self) -> str:
        return self.message[:MAX_MESSAGE]


@dataclass(frozen=True)
class Notice:
    """An Event to post: ``warning`` or normal, reason, message."""

    warning: bool
    reason: str
    message: str


@dataclass
class QueueReport:
    """Per TaskQueue, for the operator's lifetime (``OperatorContext.reports``)."""

    failure: Failure | None = None  # the failure last reported
    failed_passes: int = 0  # consecutive passes that raised a failure
    scaled_at: float | None = None  # monotonic time of the last Scaled Event
    path: list[int] = field(default_factory=list)  # replica counts not yet reported
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    def failed(self, failure: Failure, *, backoff: bool) -> Notice | None:
        """A pass ended with ``failure``; the Warning to post when it is news."""
        if backoff:
            self.failed_passes += 1
        if failure == self.failure:
            return None
        self.failure = failure
        return Notice(True, failure.reason, failure.text)

    def succeeded(self) -> Notice | None:
        self.failed_passes = 0
        if self.failure is None:
            return None
        previous, self.failure = self.failure, None
        self.recovered.set()
        return Notice(False, "Recovered", f"no longer {previous.reason}")

    def delay(self, poll_seconds: float) -> float:
        """How long the queue's loop waits before its next pass."""
        if not self.failed_passes:
            return poll_seconds
        return min(MAX_BACKOFF_SECONDS, poll_seconds * 2.0 ** min(self.failed_passes, 16))

    def scaled(self, before: int, after: int, now: float, detail: str) -> Notice | None:
        """Replicas went from ``before`` to ``after``; the Scaled Event when one is due."""
        if not self.path:
            self.path.append(before)
        self.path.append(after)
        return self.flush(now, detail)

    def flush(self, now: float, detail: str) -> Notice | None:
        """The coalesced Scaled Event once ``SCALED_EVENT_SECONDS`` passed since the last."""
        if len(self.path) < 2:
            return None
        if self.scaled_at is not None and now - self.scaled_at < SCALED_EVENT_SECONDS:
            return None
        path, self.path, self.scaled_at = self.path, [], now
        return Notice(False, "Scaled", f"{' -> '.join(map(str, path))} replicas ({detail})")
