"""Fixtures for the security suites: an API server with scoped tokens from a file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from grpc import aio

from taskflow.api import ApiServer
from taskflow.api.tokens import TokenRegistry, sha256_hex
from taskflow.engine import Engine
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

ADMIN = "admin-token-0123456789"
TEAM_A = "team-a-token-0123456789"
TEAM_B = "team-b-token-0123456789"
READER_A = "reader-a-token-0123456789"
METRICS = "metrics-token-0123456789"
SLOW = "slow-token-0123456789abc"

TOKENS: list[dict[str, Any]] = [
    {"name": "admin", "token": ADMIN, "namespaces": "*", "roles": ["admin"]},
    {"name": "team-a", "token": TEAM_A, "namespaces": ["team-a"], "roles": ["admin"]},
    # Listed by digest: the file need not hold the token itself.
    {"name": "team-b", "sha256": sha256_hex(TEAM_B), "namespaces": ["team-b"], "roles": ["admin"]},
    {"name": "reader-a", "token": READER_A, "namespaces": ["team-a"], "roles": ["read"]},
    {"name": "metrics", "token": METRICS, "namespaces": "*", "roles": ["metrics"]},
    {
        "name": "slow",
        "token": SLOW,
        "namespaces": ["team-a"],
        "roles": ["submit", "read"],
        "rate": 0.001,
        "burst": 3,
    },
]


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


class TokensFile:
    """The tokens file of the server; ``write`` replaces it (the server re-reads it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, tokens: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tokens": tokens}))
        tmp.replace(self.path)


@pytest.fixture
def tokens_file(tmp_path: Path) -> TokensFile:
    f = TokensFile(tmp_path / "tokens.json")
    f.write(TOKENS)
    return f


@pytest.fixture
async def secure_server(engine: Engine, tokens_file: TokensFile) -> AsyncIterator[ApiServer]:
    registry = TokenRegistry("", tokens_file.path, poll_interval=0)
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", tokens=registry)
    await server.start()
    yield server
    await server.stop(grace=1)


@pytest.fixture
async def secure_stub(secure_server: ApiServer) -> AsyncIterator[Any]:
    async with aio.insecure_channel(f"127.0.0.1:{secure_server.grpc_port}") as channel:
        yield pb_grpc.TaskServiceStub(channel)


Call = Callable[..., Any]
