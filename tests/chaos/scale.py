"""How big the scenarios are: ``TASKFLOW_CHAOS_SCALE=reduced`` (default, the CI suite) or
``full`` (``scripts/chaos``: thousands of tasks per scenario)."""

from __future__ import annotations

import os
from dataclasses import dataclass

SCALE_ENV = "TASKFLOW_CHAOS_SCALE"


@dataclass(frozen=True)
class Scale:
    name: str
    #: tasks in a scenario's stream
    tasks: int
    #: submissions per second
    rate: float
    workers: int
    concurrency: int
    #: how long every accepted task has to become terminal once the last fault is over
    settle_timeout: float
    #: how often a repeated fault (a kill, a drain) strikes during the stream
    faults: int
    #: tasks of each poison kind
    poison_copies: int
    #: duration range of the long tasks, in ms
    long_ms: tuple[int, int]


REDUCED = Scale("reduced", 300, 60.0, 2, 8, 30.0, 3, 1, (1000, 2000))
FULL = Scale("full", 3000, 120.0, 3, 16, 120.0, 10, 5, (1000, 3000))


def current_scale() -> Scale:
    name = os.environ.get(SCALE_ENV, "reduced").strip().lower() or "reduced"
    scales = {s.name: s for s in (REDUCED, FULL)}
    if name not in scales:
        raise ValueError(f"{SCALE_ENV}: expected one of {', '.join(scales)}, got {name!r}")
    return scales[name]
