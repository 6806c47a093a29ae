"""Reading task rows: the columns every query selects, and the record they make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskflow.models import Attempt, RetryPolicy, TaskRecord, TaskState

TERMINAL_SQL = "('succeeded', 'failed', 'cancelled')"
COLUMNS = """id::text, namespace, queue, handler, coalesce(payload::text, 'null') AS payload,
    priority, state, attempts, failures,
    max_retries, max_retries_set, timeout_seconds, retry_initial, retry_multiplier, retry_max,
    idempotency_key, concurrency_key, concurrency_limit, labels, run_at, created_at, started_at,
    finished_at, updated_at, result::text AS result, error, traceback, progress,
    progress_message, run_id::text, step, skipped"""


def record_from_row(row: dict[str, Any], attempts: Sequence[Attempt] = ()) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        namespace=row["namespace"],
        queue=row["queue"],
        handler=row["handler"],
        state=TaskState(row["state"]),
        payload_json=row["payload"],
        priority=row["priority"],
        attempts=row["attempts"],
        failures=row["failures"],
        max_retries=row["max_retries"],
        max_retries_set=row["max_retries_set"],
        timeout_seconds=row["timeout_seconds"],
        retry=RetryPolicy(
            initial_seconds=row["retry_initial"],
            multiplier=row["retry_multiplier"],
            max_seconds=row["retry_max"],
        ),
        idempotency_key=row["idempotency_key"],
        concurrency_key=row["concurrency_key"],
        concurrency_limit=row["concurrency_limit"],
        labels=row["labels"] or {},
        created_at=row["created_at"],
        run_at=row["run_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        result_json=row["result"],
        error=row["error"],
        traceback=row["traceback"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        attempt_history=tuple(attempts),
        run_id=row["run_id"],
        step=row["step"],
        skipped=row["skipped"],
    )


def state_of(value: str | None) -> TaskState | None:
    return None if value is None else TaskState(value)
