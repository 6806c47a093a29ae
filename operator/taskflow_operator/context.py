"""What lives in kopf's ``memo`` for the operator's lifetime: engine, API client, metrics."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from aiohttp import web

from taskflow.engine import Engine
from taskflow_operator.autoscaler import History
from taskflow_operator.kube import Kube
from taskflow_operator.metrics import OperatorMetrics
from taskflow_operator.reporting import QueueReport
from taskflow_operator.settings import OperatorConfig


class Leadership:
    """Whether this operator is the active one.

    kopf stops every daemon while a higher-priority peer is active, and starts them again when
    it leaves; each TaskQueue daemon holds the leadership while it runs, so "some daemon runs"
    means "this operator leads". Housekeeping runs only then.
    """

    def __init__(self) -> None:
        self._holders = 0
        self.changed = asyncio.Event()

    @property
    def active(self) -> bool:
        return self._holders > 0

    def hold(self) -> None:
        self._holders += 1
        self.changed.set()

    def release(self) -> None:
        self._holders -= 1
        self.changed.set()


class EventBudget:
    """A token bucket for Kubernetes Events: a burst of failures posts a few, not thousands."""

    def __init__(self, per_second: float = 2.0, burst: int = 20) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        #: Events not posted because the budget was spent.
        self.dropped = 0

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.dropped += 1
        return False


@dataclass
class OperatorContext:
    config: OperatorConfig
    engine: Engine
    kube: Kube
    metrics: OperatorMetrics
    leadership: Leadership = field(default_factory=Leadership)
    #: Autoscaler memory per ``(namespace, name)`` of a TaskQueue.
    histories: dict[tuple[str, str], History] = field(default_factory=dict)
    #: One pass at a time per TaskQueue (event handlers and the daemon both reconcile).
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    #: What each TaskQueue has told through Events (failures reported, scale changes pending).
    reports: dict[tuple[str, str], QueueReport] = field(default_factory=dict)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    #: Warning Events posted by the operator itself (failures), rate limited.
    events: EventBudget = field(default_factory=EventBudget)
    #: The engine reads of the Task mirror, on their own small pool (submits never wait on it).
    mirror_engine: Engine | None = None
    #: Whether the Task mirror and TTL sweeper were started (by the first Task seen).
    following: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    http: web.AppRunner | None = None


def queue_lock(ctx: OperatorContext, namespace: str, name: str) -> asyncio.Lock:
    return ctx.locks.setdefault((namespace, name), asyncio.Lock())


def context(memo: kopf.Memo | Any) -> OperatorContext:
    ctx = getattr(memo, "ctx", None)
    if not isinstance(ctx, OperatorContext):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return ctx
