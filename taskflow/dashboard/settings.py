"""The dashboard's settings, from the environment like every other setting."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ACTIONS_ENV = "TASKFLOW_DASHBOARD_ACTIONS"
SAMPLE_INTERVAL_ENV = "TASKFLOW_DASHBOARD_SAMPLE_SECONDS"


@dataclass(frozen=True)
class DashboardSettings:
    """``actions``: show and accept cancel / replay / retry (off: the dashboard only reads).
    ``sample_seconds`` and ``samples``: the queue history kept in memory for the charts
    (300 samples of 2 s: the last ten minutes)."""

    actions: bool = False
    sample_seconds: float = 2.0
    samples: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        source = os.environ if env is None else env
        raw = source.get(ACTIONS_ENV, "").strip().lower()
        if raw not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{ACTIONS_ENV}: expected 1 or 0, got {raw!r}")
        interval = source.get(SAMPLE_INTERVAL_ENV, "").strip()
        try:
            seconds = float(interval) if interval else cls.sample_seconds
        except ValueError:
            raise ValueError(
                f"{SAMPLE_INTERVAL_ENV}: expected a number of seconds, got {interval!r}"
            ) from None
        if not 0.05 <= seconds <= 3600:
            raise ValueError(
                f"{SAMPLE_INTERVAL_ENV}: must be between 0.05 and 3600, got {seconds:g}"
            )
        return cls(actions=raw in ("1", "true", "yes", "on"), sample_seconds=seconds)
