"""Both clients behind one blocking interface, so one test body checks that ``Client`` and
``AsyncClient`` behave the same.

``BlockingAsyncClient`` runs an ``AsyncClient`` on an event loop in a thread of its own: each
coroutine method blocks until its result is there, each async iterator becomes an iterator
that fetches one item per step (so a test can act between snapshots of a watch).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from taskflow_client import AsyncClient, Client

T = TypeVar("T")

CLIENT_KINDS = ("sync", "async")


class EventLoopThread:
    """An event loop running in a daemon thread until ``close()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class BlockingAsyncClient:
    """The methods of an ``AsyncClient``, called like those of a ``Client``."""

    def __init__(self, loop: EventLoopThread, client: AsyncClient) -> None:
        self._loop = loop
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._loop.run(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return call

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._loop.run(anext(items))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                self._loop.run(aclose())

    def close(self) -> None:
        self._loop.run(self._client.close())

    def __enter__(self) -> BlockingAsyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


AnyClient = Client | BlockingAsyncClient
MakeClient = Callable[..., AnyClient]


@contextlib.contextmanager
def client_factory(kind: str) -> Iterator[MakeClient]:
    """``make(target, **kwargs)`` builds a client of ``kind``; every one is closed after."""
    made: list[AnyClient] = []
    loop = EventLoopThread() if kind == "async" else None

    def make(*args: Any, **kwargs: Any) -> AnyClient:
        client: AnyClient
        if loop is None:
            client = Client(*args, **kwargs)
        else:
            client = BlockingAsyncClient(loop, AsyncClient(*args, **kwargs))
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            client.close()
        if loop is not None:
            loop.close()
