"""Example handlers: what ``taskflow dev`` runs when no ``--app`` is given.

```
taskflow submit default add --payload '{"a": 2, "b": 3}' --wait
taskflow submit default send_email --payload '{"to": "ada@example.com"}' --wait
taskflow submit default flaky --payload '{"probability": 0.7}' --max-retries 5 --wait
taskflow dag submit examples/dags/diamond.yaml --wait
```
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from typing import Any

from taskflow_worker import PermanentError, Router, TaskContext

router = Router()


def _mapping(payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise PermanentError(f"payload must be a JSON object, got {type(payload).__name__}")
    return payload


def _number(payload: dict[str, Any], key: str, default: float | None = None) -> int | float:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PermanentError(f"payload.{key}: expected a number, got {value!r}")
    return value


@router.task("noop")
async def noop(ctx: TaskContext, payload: Any) -> None:
    """Does nothing: measures the queue itself."""
    return None


@router.task("add")
async def add(ctx: TaskContext, payload: Any) -> float | int:
    """``{"a": 2, "b": 3}`` → ``5``."""
    data = _mapping(payload)
    return _number(data, "a") + _number(data, "b")


@router.task("send_email", timeout=10)
async def send_email(ctx: TaskContext, payload: Any) -> dict[str, str]:
    """Pretends to hand a message to a mail server (50-200 ms); returns its message id."""
    data = _mapping(payload)
    to = data.get("to")
    if not isinstance(to, str) or "@" not in to.strip("@"):
        raise PermanentError(f"payload.to: expected an email address, got {to!r}")
    await asyncio.sleep(random.uniform(0.05, 0.2))
    message_id = f"<{uuid.uuid4().hex}@taskflow.local>"
    ctx.logger.info("email sent to %s as %s", to, message_id)
    return {"to": to, "message_id": message_id}


@router.task("resize_image", timeout=30)
def resize_image(ctx: TaskContext, payload: Any) -> dict[str, Any]:
    """CPU-bound work in a thread: hashes a few 'tiles', reporting progress per size."""
    data = _mapping(payload)
    sizes = data.get("sizes", [64, 256, 1024])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise PermanentError(f"payload.sizes: expected a list of positive integers, got {sizes!r}")
    image = str(data.get("image", "example.png"))
    outputs = []
    for i, size in enumerate(sizes):
        if ctx.cancelled:
            raise PermanentError("cancelled")
        digest = hashlib.sha256(image.encode())
        for _ in range(200 + size // 4):
            digest = hashlib.sha256(digest.digest())
        outputs.append(f"{image.rsplit('.', 1)[0]}-{size}.png#{digest.hexdigest()[:8]}")
        ctx.progress((i + 1) / len(sizes), f"resized to {size}px")
    return {"image": image, "outputs": outputs}


@router.task("flaky")
async def flaky(ctx: TaskContext, payload: Any) -> dict[str, int]:
    """Fails with ``probability`` (default 0.5) so retries can be watched."""
    probability = _number(_mapping(payload), "probability", 0.5)
    if random.random() < probability:
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt} (p={probability:g})")
    return {"attempt": ctx.attempt}


@router.task("sleep")
async def sleep(ctx: TaskContext, payload: Any) -> dict[str, int | float]:
    """Sleeps ``seconds`` (default 1); a cancellation stops it at once."""
    seconds = _number(_mapping(payload), "seconds", 1.0)
    if seconds < 0:
        raise PermanentError(f"payload.seconds: must not be negative, got {seconds:g}")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@router.task("sleep_sync")
def sleep_sync(ctx: TaskContext, payload: Any) -> dict[str, int | float]:
    """``sleep`` in a worker thread: polls ``ctx.cancelled`` so a cancellation stops it."""
    seconds = _number(_mapping(payload), "seconds", 1.0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled:
            raise PermanentError("cancelled")
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return {"slept": seconds}


@router.task("fail")
async def fail(ctx: TaskContext, payload: Any) -> None:
    """Always fails, at once and for good (``message`` is the error): a dead letter. With
    ``"retry": true`` it fails with an ordinary error instead, so every retry is used first."""
    data = _mapping(payload)
    message = str(data.get("message", "this task always fails"))
    if data.get("retry"):
        raise RuntimeError(message)
    raise PermanentError(message)


@router.task("generate_report", timeout=60)
async def generate_report(ctx: TaskContext, payload: Any) -> dict[str, Any]:
    """Several steps, each reported as progress."""
    data = _mapping(payload)
    rows = int(_number(data, "rows", 1000))
    steps = ["query", "aggregate", "render", "upload"]
    for i, step in enumerate(steps):
        await asyncio.sleep(random.uniform(0.05, 0.15))
        ctx.progress((i + 1) / len(steps), step)
    name = str(data.get("name", "daily"))
    return {"report": f"reports/{name}-{ctx.task_id[:8]}.pdf", "rows": rows}


@router.task("collect")
async def collect(ctx: TaskContext, payload: Any) -> dict[str, Any]:
    """A DAG step: returns its own payload and, by step name, the payload each parent step
    had (one level: results stay small however deep the DAG). ``sleep`` in the payload waits
    that many seconds first."""
    data = payload if isinstance(payload, dict) else {"value": payload}
    seconds = data.get("sleep", 0)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        await asyncio.sleep(float(seconds))
    parents = {
        name: result.get("payload") if isinstance(result, dict) else result
        for name, result in ctx.parents.items()
    }
    return {"step": ctx.step, "payload": payload, "parents": parents}


@router.task("sum_parents")
async def sum_parents(ctx: TaskContext, payload: Any) -> float | int:
    """A DAG step: ``payload`` (a number, default 0) plus its parents' numeric results."""
    total = payload if isinstance(payload, int | float) and not isinstance(payload, bool) else 0
    for step, result in ctx.parents.items():
        if isinstance(result, bool) or not isinstance(result, int | float):
            raise PermanentError(f"parent {step!r} returned {result!r}, not a number")
        total += result
    return total
