"""Fixtures of the client tests: an in-process fake API server and the Go example client.

None of them needs Redis, PostgreSQL or the real API server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskflow_client import AsyncClient, Client

from .fake_server import FakeServer, running_fake_server

REPO_ROOT = Path(__file__).resolve().parents[2]
GO_CLIENT_DIR = REPO_ROOT / "examples" / "go-client"


def build_go_client(output: Path) -> Path:
    """Build ``examples/go-client`` into ``output`` (modules from the Go proxy, pinned by
    go.sum); raises ``subprocess.CalledProcessError`` with the compiler output on failure."""
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError("go")
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    subprocess.run(
        [go, "build", "-o", str(output), "."],
        cwd=GO_CLIENT_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return output


@pytest.fixture(scope="session")
def go_client_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example client, built once per session; skips when ``go`` is not on PATH."""
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (go) is not on PATH: cannot build examples/go-client")
    output = tmp_path_factory.mktemp("go-client") / "go-client"
    try:
        return build_go_client(output)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"go build of examples/go-client failed:\n{exc.stdout}{exc.stderr}")


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
