"""Handler registration: ``@router.task("name")`` on async or plain functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from taskflow_worker.context import TaskContext

Handler = Callable[[TaskContext, Any], Any]
F = TypeVar("F", bound=Handler)


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    fn: Handler
    is_async: bool
    timeout: float | None
    max_retries: int | None


class Router:
    """A set of named handlers. A worker runs the handlers of the router ``--app`` names."""

    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}

    def task(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Callable[[F], F]:
        """Register a handler ``fn(ctx, payload)``; sync functions run in worker threads.

        ``timeout`` (seconds) applies when the task itself carries none; ``max_retries``
        likewise.
        """

        def register(fn: F) -> F:
            handler_name = name or fn.__name__
            if handler_name in self._handlers:
                raise ValueError(f"handler {handler_name!r} is registered twice")
            self._handlers[handler_name] = HandlerSpec(
                name=handler_name,
                fn=fn,
                is_async=inspect.iscoroutinefunction(fn),
                timeout=timeout,
                max_retries=max_retries,
            )
            return fn

        return register

    def include(self, other: Router) -> None:
        for spec in other:
            if spec.name in self._handlers:
                raise ValueError(f"handler {spec.name!r} is registered twice")
            self._handlers[spec.name] = spec

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __iter__(self) -> Iterator[HandlerSpec]:
        return iter(self._handlers.values())

    def __len__(self) -> int:
        return len(self._handlers)
