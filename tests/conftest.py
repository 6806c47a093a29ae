"""Shared fixtures.

Servers
-------
One real Redis and one real PostgreSQL serve the whole session (``taskflow.embedded``); every
test that asks for ``redis_url`` or ``database_url`` gets a clean state on them:

* ``redis_url``: the session Redis after ``FLUSHALL`` (tests run serially; keys with cluster
  hash tags rule out per-test DB indexes as isolation).
* ``database_url``: a fresh, empty database created for the test and dropped after it.

Set ``TASKFLOW_TEST_REDIS_URL`` / ``TASKFLOW_TEST_DATABASE_URL`` to use external servers
instead. Both must be disposable: Redis is flushed before every test, and the PostgreSQL role
needs CREATEDB (the database named in the URL is only used to create and drop the per-test
ones).

``redis_server`` / ``postgres_server`` give the embedded instances themselves; they are started
lazily, so a run against external servers never starts them.

PostgreSQL data lives in ``pg_data_dir`` directories, not under pytest's ``tmp_path``: when the
suite runs as root the server runs as another user, and every pytest session that starts strips
the other-users bits from ``/tmp/pytest-of-root``, which would cut a concurrent session's server
off from its files.
"""

from __future__ import annotations

import os

# gRPC's C core installs fork handlers that run in every child forked while gRPC threads are
# busy; a child that then runs Python before exec (``preexec_fn``, the kube-apiserver and
# containerd of the harness) or never execs aborts at random (SIGABRT: "epoll_wait error: Bad
# file descriptor"; about one fork in five under load). No test forks a process that uses gRPC
# without exec, so the handlers are off: set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql

from taskflow.config import Settings
from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis
from taskflow.engine import Engine
from taskflow.store import apply_migrations

pytest_plugins = ["tests.go_client", "tests.k8s.plugin"]

REDIS_URL_ENV = "TASKFLOW_TEST_REDIS_URL"
DATABASE_URL_ENV = "TASKFLOW_TEST_DATABASE_URL"

# ---------------------------------------------------------------------------------------------
# Servers: Redis and PostgreSQL
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The session's embedded Redis (no persistence)."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False) as server:
        yield server


@contextmanager
def _temporary_pg_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="taskflow-test-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_data_dir() -> Iterator[Path]:
    """An empty directory for a test's own EmbeddedPostgres (outside pytest's basetemp)."""
    with _temporary_pg_dir() as path:
        yield path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """The session's embedded PostgreSQL (fsync off: fast, not crash safe)."""
    with _temporary_pg_dir() as data_dir, EmbeddedPostgres(data_dir, fsync=False) as server:
        yield server


@pytest.fixture(scope="session")
def _redis_session_url(request: pytest.FixtureRequest) -> str:
    external = os.environ.get(REDIS_URL_ENV)
    if external:
        return external
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture(scope="session")
def _redis_admin(_redis_session_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(_redis_session_url)
    yield client
    client.close()


@pytest.fixture
def redis_url(_redis_session_url: str, _redis_admin: redis.Redis) -> str:
    """URL of a Redis emptied for this test."""
    _redis_admin.flushall()
    return _redis_session_url


class _DatabaseFactory:
    """Creates and drops per-test databases over one autocommit admin connection."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.conn = psycopg.connect(admin_url, autocommit=True)

    def create(self, test_name: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
        name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
        self.conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        )
        return name

    def drop(self, name: str) -> None:
        self.conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def url_for(self, name: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture(scope="session")
def _database_factory(request: pytest.FixtureRequest) -> Iterator[_DatabaseFactory]:
    admin_url = os.environ.get(DATABASE_URL_ENV)
    if not admin_url:
        server: EmbeddedPostgres = request.getfixturevalue("postgres_server")
        admin_url = server.url_for("postgres")
    factory = _DatabaseFactory(admin_url)
    yield factory
    factory.close()


@pytest.fixture
def database_url(
    _database_factory: _DatabaseFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """URL of a fresh, empty database that exists for this test only."""
    name = _database_factory.create(request.node.name)
    yield _database_factory.url_for(name)
    _database_factory.drop(name)


# ---------------------------------------------------------------------------------------------
# Engine and API fixtures follow.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    """Engine settings on the test servers; test folders override it to tune values."""
    return Settings(redis_url=redis_url, database_url=database_url)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    """An engine on a migrated database."""
    await apply_migrations(settings.database_url)
    eng = await Engine.connect(settings)
    yield eng
    await eng.close()
