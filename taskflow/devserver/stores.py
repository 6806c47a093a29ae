"""Redis and PostgreSQL for ``taskflow dev``: the ones the environment names, else embedded.

Embedded servers keep their files in the data dir (``redis/`` with the append-only file,
``postgres/`` with the cluster), so a restart of ``taskflow dev`` finds every task again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger("taskflow.dev")

REDIS_ENV = "TASKFLOW_REDIS_URL"
DATABASE_ENV = "TASKFLOW_DATABASE_URL"


@dataclass
class Stores:
    redis_url: str
    database_url: str
    redis: EmbeddedRedis | None = None
    postgres: EmbeddedPostgres | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the embedded servers (Redis flushes its append-only file, PostgreSQL
        checkpoints); external ones are left alone."""
        if self.redis is not None:
            log.info("stopping Redis (pid %s)", self.redis.pid)
            self.redis.stop()
        if self.postgres is not None:
            log.info("stopping PostgreSQL (pid %s)", self.postgres.pid)
            self.postgres.stop()

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in (self.redis, self.postgres) if s is not None and s.pid]


def start_stores(
    data_dir: Path, env: Mapping[str, str] | None = None, *, die_with_parent: bool = False
) -> Stores:
    """Use ``TASKFLOW_REDIS_URL`` / ``TASKFLOW_DATABASE_URL`` when set; start embedded servers
    for the others (raises ``EmbeddedServerError``; nothing is left running then).

    ``die_with_parent``: the embedded servers stop when the calling thread ends, even if
    this process is killed outright (call it from the main thread).
    """
    source = os.environ if env is None else env
    redis_url = source.get(REDIS_ENV, "")
    database_url = source.get(DATABASE_ENV, "")
    stores = Stores(redis_url, database_url)
    try:
        if redis_url:
            stores.notes["redis"] = f"from {REDIS_ENV}"
        else:
            stores.redis = EmbeddedRedis(
                data_dir / "redis", persistent=True, die_with_parent=die_with_parent
            )
            log.info("starting embedded Redis in %s", stores.redis.data_dir)
            stores.redis.start()
            stores.redis_url = stores.redis.url
            stores.notes["redis"] = f"embedded, append-only file in {stores.redis.data_dir}"
        if database_url:
            stores.notes["postgres"] = f"from {DATABASE_ENV}"
        else:
            stores.postgres = EmbeddedPostgres(
                data_dir / "postgres", fsync=True, die_with_parent=die_with_parent
            )
            log.info("starting embedded PostgreSQL in %s", stores.postgres.data_dir)
            stores.postgres.start()
            stores.database_url = stores.postgres.url
            stores.notes["postgres"] = f"embedded, cluster in {stores.postgres.pgdata}"
    except BaseException:
        with contextlib.suppress(Exception):
            stores.stop()
        raise
    return stores
