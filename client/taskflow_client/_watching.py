"""The decisions of a task watch shared by both clients: time left, and what follows a drop."""

from __future__ import annotations

import time

import grpc

from ._errors import TaskFlowTimeoutError, UnavailableError, from_rpc_error, status_of
from ._retry import Backoff

__all__ = ["WatchPlan"]


class WatchPlan:
    """The deadline and reconnect budget of one watch of one task."""

    def __init__(self, task_id: str, timeout: float | None, backoff: Backoff) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.backoff = backoff
        self.failures = 0

    def _timed_out(self) -> TaskFlowTimeoutError:
        return TaskFlowTimeoutError(f"task {self.task_id} did not finish within {self.timeout}s")

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
        self.failures = 0

    def pause_after_drop(self, error: grpc.RpcError | None) -> float:
        """Seconds to wait before reopening a stream that ended early (``error=None``: ended
        without a terminal snapshot); raises when the watch must stop instead."""
        self.failures += 1
        code = grpc.StatusCode.UNAVAILABLE if error is None else status_of(error)[0]
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and self.deadline is not None:
            raise self._timed_out() from error
        if code != grpc.StatusCode.UNAVAILABLE or self.failures >= self.backoff.attempts:
            if error is None:
                raise UnavailableError(f"the watch of task {self.task_id} kept ending early")
            raise from_rpc_error(error) from error
        pause = self.backoff.delay(self.failures)
        if self.deadline is not None:
            pause = max(0.0, min(pause, self.deadline - time.monotonic()))
        return pause
