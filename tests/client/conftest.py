"""Fixtures of the client tests: an in-process fake API server, and clients of it.

``client`` and ``make_client`` are parametrized over both clients: a test that takes them
runs once with ``Client`` and once with ``AsyncClient`` (driven through
``BlockingAsyncClient``), so the two keep behaving the same. ``aclient`` is the plain
``AsyncClient`` for tests of what only it has.

None of them needs Redis, PostgreSQL or the real API server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskflow_client import AsyncClient

from .clients import CLIENT_KINDS, AnyClient, MakeClient, client_factory
from .fake_server import FakeServer, running_fake_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client settings come from the arguments of each test, not from the environment."""
    for name in ("TASKFLOW_API_ADDR", "TASKFLOW_API_TOKEN", "TASKFLOW_RETRY_BUDGET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A fresh fake API server on a free local port."""
    with running_fake_server() as server:
        yield server


@pytest.fixture(params=CLIENT_KINDS)
def make_client(request: pytest.FixtureRequest) -> Iterator[MakeClient]:
    """Builds clients of one kind (``make_client(target, **kwargs)``), closed after the test."""
    with client_factory(request.param) as make:
        yield make


@pytest.fixture
def client(fake: FakeServer, make_client: MakeClient) -> AnyClient:
    """A client of ``fake`` that makes at most 4 attempts per call."""
    return make_client(fake.target, retries=4, timeout=10)


@pytest.fixture
async def aclient(fake: FakeServer) -> AsyncIterator[AsyncClient]:
    """An AsyncClient of ``fake`` that makes at most 4 attempts per call."""
    async with AsyncClient(fake.target, retries=4, timeout=10) as c:
        yield c
