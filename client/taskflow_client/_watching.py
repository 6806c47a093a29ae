"""The decisions of a watch (of a task or a DAG run) shared by both clients: time left, and
what follows a drop."""

from __future__ import annotations

import time

import grpc

from ._errors import TaskFlowTimeoutError, UnavailableError, status_of
from ._retry import RETRY_WRITE, Attempts, RetryRules

__all__ = ["WatchPlan"]


class WatchPlan:
    """The deadline and reconnect budget of one watch (``what``: "task ID", "DAG run ID").

    A dropped stream is reopened while the server is unavailable, for as long as the retry
    budget allows counting from the last snapshot received (each snapshot proves the server
    is back), and never past the watch's own ``timeout``.
    """

    def __init__(self, what: str, timeout: float | None, rules: RetryRules) -> None:
        self.what = what
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.rules = rules
        self._outage = self._attempts()

    def _attempts(self) -> Attempts:
        return self.rules.start(RETRY_WRITE, None)

    def _timed_out(self) -> TaskFlowTimeoutError:
        return TaskFlowTimeoutError(f"{self.what} did not finish within {self.timeout}s")

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline); raises once it passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._timed_out()
        return left

    def received(self) -> None:
        """The stream delivered a snapshot: the server is back, the reconnect budget resets."""
        if self._outage.failures:
            self._outage = self._attempts()

    def pause_after_drop(self, error: grpc.RpcError | None) -> float:
        """Seconds to wait before reopening a stream that ended early (``error=None``: ended
        without a terminal snapshot); raises when the watch must stop instead."""
        code = grpc.StatusCode.UNAVAILABLE if error is None else status_of(error)[0]
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and self.deadline is not None:
            raise self._timed_out() from error
        pause = self._outage.next_pause(code)
        if pause is None:
            if error is None:
                raise UnavailableError(f"the watch of {self.what} kept ending early")
            raise self._outage.gave_up(error) from error
        if self.deadline is not None:
            pause = max(0.0, min(pause, self.deadline - time.monotonic()))
        return pause
