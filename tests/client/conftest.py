"""Fixtures of the client tests: an in-process fake API server.

None of them needs Redis, PostgreSQL or the real API server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskflow_client import AsyncClient, Client

from .fake_server import FakeServer, running_fake_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A fresh fake API server on a free local port."""
    with running_fake_server() as server:
        yield server


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    """A sync client of ``fake`` that retries at most 4 times."""
    with Client(fake.target, retries=4, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeServer) -> AsyncIterator[AsyncClient]:
    """An async client of ``fake`` that retries at most 4 times."""
    async with AsyncClient(fake.target, retries=4, timeout=10) as c:
        yield c
