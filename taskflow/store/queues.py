"""The ``queues`` table: per-queue defaults and rate limits."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from taskflow.keys import QueueRef
from taskflow.models import QueueConfig, RateLimit, RetryPolicy

_COLUMNS = """namespace, name, max_retries, retry_initial, retry_multiplier, retry_max,
    timeout_seconds, rate_per_second, rate_burst"""


def _config(row: dict[str, Any]) -> QueueConfig:
    retry = None
    if row["retry_initial"] is not None:
        retry = RetryPolicy(
            initial_seconds=row["retry_initial"],
            multiplier=row["retry_multiplier"],
            max_seconds=row["retry_max"],
        )
    rate = None
    if row["rate_per_second"] is not None:
        rate = RateLimit(row["rate_per_second"], row["rate_burst"])
    return QueueConfig(
        max_retries=row["max_retries"],
        retry=retry,
        timeout_seconds=row["timeout_seconds"],
        rate=rate,
    )


class QueueStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def upsert(self, ref: QueueRef, config: QueueConfig) -> None:
        retry, rate = config.retry, config.rate
        async with self.pool.connection() as conn:
            await conn.execute(
                f"""INSERT INTO queues ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (namespace, name) DO UPDATE SET
                        max_retries = excluded.max_retries,
                        retry_initial = excluded.retry_initial,
                        retry_multiplier = excluded.retry_multiplier,
                        retry_max = excluded.retry_max,
                        timeout_seconds = excluded.timeout_seconds,
                        rate_per_second = excluded.rate_per_second,
                        rate_burst = excluded.rate_burst,
                        updated_at = now()""",
                (
                    ref.namespace,
                    ref.name,
                    config.max_retries,
                    retry.initial_seconds if retry else None,
                    retry.multiplier if retry else None,
                    retry.max_seconds if retry else None,
                    config.timeout_seconds,
                    rate.per_second if rate else None,
                    rate.burst if rate else None,
                ),
            )

    async def get(self, ref: QueueRef) -> QueueConfig | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM queues WHERE namespace = %s AND name = %s",
                (ref.namespace, ref.name),
            )
            row = await cur.fetchone()
        return None if row is None else _config(row)

    async def all(self) -> dict[QueueRef, QueueConfig]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {_COLUMNS} FROM queues")
            rows = await cur.fetchall()
        return {QueueRef(r["namespace"], r["name"]): _config(r) for r in rows}
