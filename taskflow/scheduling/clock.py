"""Where the scheduler reads the time: the system clock, or one a test moves."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from taskflow.models import utcnow


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()


SYSTEM_CLOCK = SystemClock()
