"""The load generator: a steady stream of tasks submitted through ``taskflow_client.Client``.

Each task is planned first (``TaskPlan``): what its handler will do, so what the checks must
find at the end. Submissions carry idempotency keys; after an error that leaves the outcome
unknown (unavailable, deadline, internal) the same key is submitted again until the submit
deadline, so a task is never created twice by a retry. The generator keeps what the client was
told: ``accepted`` maps each key to the id the API returned.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from taskflow_client import (
    Client,
    InvalidArgumentError,
    ResourceExhaustedError,
    RetryPolicy,
    TaskFlowError,
    TaskRequest,
    UnauthenticatedError,
)

#: Small backoff so retries happen within a scenario.
FAST_RETRY = RetryPolicy(initial_seconds=0.05, multiplier=2.0, max_seconds=0.4)

#: Errors after which the task was certainly not created: resubmitting cannot help.
_FINAL_ERRORS = (InvalidArgumentError, ResourceExhaustedError, UnauthenticatedError)


@dataclass(frozen=True)
class TaskPlan:
    """One task of a stream and what a correct system does with it."""

    key: str
    kind: str
    handler: str
    payload: dict[str, Any]
    max_retries: int
    expect: str  # the terminal state it must reach
    starts: int  # handler starts on a run without faults
    timeout: float | None = None
    error_contains: str | None = None  # a word its final error must contain

    def request(self, queue: str) -> TaskRequest:
        return TaskRequest(
            queue=queue,
            handler=self.handler,
            payload=self.payload,
            max_retries=self.max_retries,
            timeout=self.timeout,
            idempotency_key=self.key,
            retry=FAST_RETRY,
        )


def _plan(
    key: str,
    handler: str,
    kind: str,
    ms: int,
    expect: str = "succeeded",
    starts: int = 1,
    max_retries: int = 3,
    **extra: Any,
) -> TaskPlan:
    payload = {"key": key, "ms": ms, **extra}
    return TaskPlan(key, kind, handler, payload, max_retries, expect, starts)


def mixed_plans(prefix: str, count: int, seed: int, *, long_ms: tuple[int, int]) -> list[TaskPlan]:
    """``count`` tasks of mixed lengths: most quick, some up to ``long_ms``; some fail and
    retry (then succeed, or run out of retries), some fail permanently; a quarter are sync."""
    rng = random.Random(seed)
    plans: list[TaskPlan] = []
    for i in range(count):
        key = f"{prefix}-{i:06d}"
        handler = "work_sync" if rng.random() < 0.25 else "work"
        roll = rng.random()
        if roll < 0.62:
            plans.append(_plan(key, handler, "quick", rng.randint(5, 60)))
        elif roll < 0.74:
            plans.append(_plan(key, handler, "medium", rng.randint(150, 600)))
        elif roll < 0.80:
            plans.append(_plan(key, handler, "long", rng.randint(*long_ms)))
        elif roll < 0.90:
            fails = rng.randint(1, 2)
            plans.append(
                _plan(key, handler, "flaky", rng.randint(5, 60), starts=fails + 1, fail=fails)
            )
        elif roll < 0.95:
            # Fails every time: runs 1 + max_retries times, then is failed.
            plans.append(
                _plan(key, handler, "doomed", rng.randint(5, 30), "failed", 3, 2, fail=1000)
            )
        else:
            plans.append(_plan(key, handler, "permanent", 0, "failed", 1, permanent=True))
    return plans


def uniform_plans(
    prefix: str,
    count: int,
    *,
    kind: str = "quick",
    handler: str = "work",
    ms: int = 20,
    timeout: float | None = None,
    max_retries: int = 3,
) -> list[TaskPlan]:
    """``count`` tasks that each run ``ms`` milliseconds once and succeed."""
    return [
        TaskPlan(
            f"{prefix}-{i:06d}",
            kind,
            handler,
            {"key": f"{prefix}-{i:06d}", "ms": ms},
            max_retries,
            "succeeded",
            1,
            timeout=timeout,
        )
        for i in range(count)
    ]


@dataclass
class SubmitLog:
    """What the client was told, and what it had to be asked again."""

    accepted: dict[str, str] = field(default_factory=dict)  # key -> task id
    tries: Counter[str] = field(default_factory=Counter)  # key -> submit calls
    surfaced: Counter[str] = field(default_factory=Counter)  # error name -> count
    conflicting: list[str] = field(default_factory=list)  # a key answered with two ids
    rejected: list[str] = field(default_factory=list)  # final errors: key and message
    unconfirmed: list[str] = field(default_factory=list)  # keys never confirmed in time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, keys: Sequence[str], ids: Sequence[str]) -> None:
        with self.lock:
            for key, task_id in zip(keys, ids, strict=True):
                known = self.accepted.setdefault(key, task_id)
                if known != task_id:
                    self.conflicting.append(f"{key}: {known} then {task_id}")

    @property
    def retried_keys(self) -> list[str]:
        return [k for k, n in self.tries.items() if n > 1]

    def merge(self, other: SubmitLog) -> None:
        self.accepted.update(other.accepted)
        self.tries.update(other.tries)
        self.surfaced.update(other.surfaced)
        self.conflicting += other.conflicting
        self.rejected += other.rejected
        self.unconfirmed += other.unconfirmed


class LoadGenerator:
    """Submits ``plans`` at ``rate`` per second from ``threads`` threads, ``batch`` per call.

    Plan ``i`` is due ``i / rate`` seconds after ``start``; a thread that falls behind submits
    at once. ``submit_deadline`` bounds how long one submission is retried.
    """

    def __init__(
        self,
        target: str,
        queue: str,
        plans: Sequence[TaskPlan],
        *,
        rate: float,
        threads: int = 2,
        batch: int = 1,
        submit_deadline: float = 60.0,
        call_timeout: float = 10.0,
    ) -> None:
        self.target = target
        self.queue = queue
        self.plans = list(plans)
        self.rate = rate
        self.batch = batch
        self.submit_deadline = submit_deadline
        self.call_timeout = call_timeout
        self.log = SubmitLog()
        self.started_at = 0.0
        self.finished_at = 0.0
        self.progress = 0  # submissions confirmed so far
        self._threads = [
            threading.Thread(target=self._run, args=(i, threads), name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]
        self._stop = threading.Event()
        self._done = 0
        self._done_lock = threading.Lock()

    def start(self) -> None:
        self.started_at = time.monotonic()
        for t in self._threads:
            t.start()

    def join(self, timeout: float) -> bool:
        """Wait until every plan was submitted (or given up on); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = any(t.is_alive() for t in self._threads)
        if alive:
            self._stop.set()
        return not alive

    def wait_progress(self, fraction: float, timeout: float) -> bool:
        """Wait until ``fraction`` of the plans were accepted; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        goal = int(len(self.plans) * fraction)
        while self.progress < goal:
            if time.monotonic() >= deadline or self._stop.is_set():
                return False
            time.sleep(0.02)
        return True

    def _run(self, index: int, threads: int) -> None:
        chunks = [
            list(range(i, min(i + self.batch, len(self.plans))))
            for i in range(index * self.batch, len(self.plans), threads * self.batch)
        ]
        with Client(self.target, timeout=self.call_timeout) as client:
            for chunk in chunks:
                if self._stop.is_set():
                    break
                due = self.started_at + chunk[0] / self.rate
                pause = due - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    break
                self._submit(client, [self.plans[i] for i in chunk])
        with self._done_lock:
            self._done += 1
            if self._done == threads:
                self.finished_at = time.monotonic()

    def _submit(self, client: Client, plans: list[TaskPlan]) -> None:
        keys = [p.key for p in plans]
        deadline = time.monotonic() + self.submit_deadline
        pause = 0.05
        while True:
            with self.log.lock:
                for key in keys:
                    self.log.tries[key] += 1
            try:
                if len(plans) == 1:
                    ids = [client.submit(**_submit_kwargs(plans[0], self.queue))]
                else:
                    ids = client.submit_many([p.request(self.queue) for p in plans])
            except _FINAL_ERRORS as exc:
                with self.log.lock:
                    self.log.rejected.append(f"{keys[0]}..: {type(exc).__name__}: {exc}")
                return
            except TaskFlowError as exc:
                with self.log.lock:
                    self.log.surfaced[_error_name(exc)] += 1
                if time.monotonic() + pause >= deadline or self._stop.is_set():
                    with self.log.lock:
                        self.log.unconfirmed.extend(keys)
                    return
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            self.log.accept(keys, ids)
            with self._done_lock:
                self.progress += len(ids)
            return


def _submit_kwargs(plan: TaskPlan, queue: str) -> dict[str, Any]:
    return {
        "queue": queue,
        "handler": plan.handler,
        "payload": plan.payload,
        "max_retries": plan.max_retries,
        "timeout": plan.timeout,
        "idempotency_key": plan.key,
        "retry": FAST_RETRY,
    }


def _error_name(exc: TaskFlowError) -> str:
    code = exc.code if isinstance(exc.code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return code.name
