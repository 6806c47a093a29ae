"""Running one claimed task's handler and classifying how it ended."""

from __future__ import annotations

import asyncio
import contextvars
import json
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

from taskflow.models import Outcome
from taskflow_worker.context import PermanentError, TaskContext
from taskflow_worker.router import HandlerSpec


@dataclass(frozen=True)
class Execution:
    outcome: Outcome
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    retryable: bool = True


async def execute(
    spec: HandlerSpec,
    ctx: TaskContext,
    payload_json: str,
    timeout: float | None,
    executor: Executor,
) -> Execution:
    """Run the handler and classify the end. Only asyncio cancellation propagates."""
    try:
        payload = json.loads(payload_json)
        result = await asyncio.wait_for(_call(spec, ctx, payload, executor), timeout or None)
    except TimeoutError:
        ctx._cancelled.set()
        return Execution(Outcome.TIMEOUT, error=f"timed out after {timeout:g}s")
    except PermanentError as exc:
        return _failure(exc, retryable=False)
    except Exception as exc:
        return _failure(exc, retryable=True)
    try:
        encoded = json.dumps(result)
    except (TypeError, ValueError) as exc:
        return Execution(
            Outcome.FAILED,
            error=f"handler {spec.name!r} returned a value that is not JSON: {exc}",
            retryable=False,
        )
    return Execution(Outcome.SUCCEEDED, result_json=encoded)


async def _call(spec: HandlerSpec, ctx: TaskContext, payload: Any, executor: Executor) -> Any:
    if spec.is_async:
        return await spec.fn(ctx, payload)
    loop = asyncio.get_running_loop()
    call: Callable[[], Any] = partial(contextvars.copy_context().run, spec.fn, ctx, payload)
    return await loop.run_in_executor(executor, call)


def _failure(exc: BaseException, *, retryable: bool) -> Execution:
    return Execution(
        Outcome.FAILED,
        error=f"{type(exc).__name__}: {exc}",
        traceback="".join(traceback.format_exception(exc)),
        retryable=retryable,
    )
