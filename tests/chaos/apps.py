"""Handlers the fault suite's worker processes run (``--app tests.chaos.apps:router``).

Every handler first appends one line to the log of handler starts named by
``TASKFLOW_CHAOS_START_LOG``: ``<task id> <attempt> <worker pid> <wall time> <handler>``. The
file is opened with ``O_APPEND`` and each line is a single ``write`` of a few dozen bytes, so
lines from concurrent processes never interleave and a SIGKILL leaves no half line.

Payloads say what a task does, so the checks know what to expect of it:

* ``work`` / ``work_sync``: ``{"ms": N, "fail": K}`` fails (retryably) while fewer than ``K``
  earlier attempts failed, then sleeps ``N`` ms and succeeds; ``{"permanent": true}`` raises
  ``PermanentError`` at once.
* ``poison``: ``{"kind": ...}`` returns or reports a value PostgreSQL cannot store (see
  ``POISON_KINDS``).
* ``stubborn``: a sync handler that sleeps ``seconds`` and never looks at ``ctx.cancelled``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from taskflow_worker import PermanentError, Router, TaskContext

START_LOG_ENV = "TASKFLOW_CHAOS_START_LOG"

#: Poison kind -> (the state its task must end in, a word its error must contain,
#: case-insensitive). A result that cannot be stored fails the attempt, saying why; an error or
#: progress text with a NUL is repaired (shown as ``\x00``), so those tasks end as their handler
#: decided.
POISON_KINDS: dict[str, tuple[str, str | None]] = {
    "nan_result": ("failed", "nan"),
    "inf_result": ("failed", "inf"),
    "nul_result": ("failed", "nul"),
    "surrogate_result": ("failed", "surrogate"),
    "nul_error": ("failed", "\\x00"),
    "nul_progress": ("succeeded", None),
}

router = Router()

_fd_lock = threading.Lock()
_fd: int | None = None


def log_start(ctx: TaskContext) -> None:
    """One line per handler start, written with one ``write`` on an ``O_APPEND`` descriptor."""
    global _fd
    path = os.environ.get(START_LOG_ENV)
    if not path:
        return
    with _fd_lock:
        if _fd is None:
            _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fd = _fd
    line = f"{ctx.task_id} {ctx.attempt} {os.getpid()} {time.time():.6f} {ctx.handler}\n"
    os.write(fd, line.encode())


def _planned_failure(ctx: TaskContext, payload: dict[str, Any]) -> None:
    if payload.get("permanent"):
        raise PermanentError("planned permanent failure")
    planned = int(payload.get("fail", 0))
    if ctx.failures < planned:
        raise RuntimeError(f"planned failure {ctx.failures + 1} of {planned}")


@router.task("work")
async def work(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    log_start(ctx)
    _planned_failure(ctx, payload)
    await asyncio.sleep(int(payload.get("ms", 0)) / 1000)
    return {"seq": payload.get("seq"), "attempt": ctx.attempt}


@router.task("work_sync")
def work_sync(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    log_start(ctx)
    _planned_failure(ctx, payload)
    time.sleep(int(payload.get("ms", 0)) / 1000)
    return {"seq": payload.get("seq"), "attempt": ctx.attempt}


@router.task("poison")
async def poison(ctx: TaskContext, payload: dict[str, Any]) -> Any:
    log_start(ctx)
    kind = payload["kind"]
    if kind == "nan_result":
        return {"value": float("nan")}
    if kind == "inf_result":
        return float("inf")
    if kind == "nul_result":
        return "before\x00after"
    if kind == "surrogate_result":
        return {"text": "lone \ud800 surrogate"}
    if kind == "nul_error":
        raise PermanentError("message with a \x00 in it")
    if kind == "nul_progress":
        ctx.progress(0.5, "halfway\x00there")
        await asyncio.sleep(0.05)
        return "done"
    raise ValueError(f"unknown poison kind {kind!r}")


@router.task("stubborn")
def stubborn(ctx: TaskContext, payload: dict[str, Any]) -> str:
    """Sleeps ``seconds`` whatever happens: cancellation is never looked at."""
    log_start(ctx)
    deadline = time.monotonic() + float(payload["seconds"])
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "finished"
