"""The event loop of the long-running servers (``taskflow api``, ``taskflow worker``): the
standard asyncio loop, or uvloop when ``TASKFLOW_EVENT_LOOP=uvloop`` asks for it (``pip
install 'taskflow[uvloop]'``). docs/performance.md has what each costs per task."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("taskflow")

ENV = "TASKFLOW_EVENT_LOOP"
CHOICES = ("asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopError(ValueError):
    """``TASKFLOW_EVENT_LOOP`` names a loop this installation cannot run."""


def chosen() -> str:
    value = os.environ.get(ENV, "").strip().lower() or "asyncio"
    if value not in CHOICES:
        raise EventLoopError(f"{ENV}: {value!r} is not one of {', '.join(CHOICES)}")
    return value


def loop_factory() -> LoopFactory | None:
    """The factory of the chosen loop (``None``: asyncio's own). Checked before anything
    starts, so a bad choice is a usage error, not a failure halfway through start-up."""
    if chosen() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        raise EventLoopError(
            f"{ENV}=uvloop: uvloop is not installed (pip install 'taskflow[uvloop]')"
        ) from None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    with asyncio.Runner(loop_factory=factory) as runner:
        log.info("event loop: %s", "asyncio" if factory is None else "uvloop")
        return runner.run(main)
