"""Fixtures: the engine and in-process workers on a real Redis Cluster of three masters
(started once per session from the bundled redis-server), PostgreSQL as everywhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from taskflow.bench.redis_cluster import EmbeddedRedisCluster
from taskflow.config import Settings
from tests.engine.conftest import WorkerHarness


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(tmp_path_factory.mktemp("redis-cluster"), masters=3) as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_cluster: EmbeddedRedisCluster) -> str:
    """Every test starts from an empty cluster."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        lease_seconds=2.0,
        sweep_interval=0.2,
        orphan_grace_seconds=0.5,
    )


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[WorkerHarness]:
    harness = WorkerHarness(settings)
    yield harness
    await harness.stop_all()
