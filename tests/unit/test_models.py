"""Validation of submissions and the shapes that travel through Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from taskflow.config import Settings
from taskflow.errors import InvalidArgument
from taskflow.models import (
    DispatchBlob,
    RetryPolicy,
    new_task_id,
    parse_task_id,
    validate_submission,
)


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"handler": "h"}, "task.queue", "Field required"),
        ({"queue": "q", "handler": "h", "priority": 1001}, "task.priority", "less than or equal"),
        ({"queue": "q", "handler": "h", "priority": "high"}, "task.priority", "integer"),
        ({"queue": "bad name!", "handler": "h"}, "task.queue", "pattern"),
        ({"queue": "q", "handler": "h", "namespace": "Upper"}, "task.namespace", "pattern"),
        ({"queue": "q", "handler": "h", "delay_seconds": -1}, "task.delay_seconds", "greater"),
        (
            {"queue": "q", "handler": "h", "concurrency_key": "k"},
            "task",
            "concurrency_limit is required",
        ),
        (
            {"queue": "q", "handler": "h", "delay_seconds": 5, "run_at": datetime.now(UTC)},
            "task",
            "exclusive",
        ),
        ({"queue": "q", "handler": "h", "surprise": 1}, "task.surprise", "Extra inputs"),
    ],
)
def test_bad_submissions_name_the_field(raw: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_submission(raw)
    assert err.value.field == field
    assert fragment in err.value.problem


def test_batch_paths_are_indexed() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_submission({"queue": "q"}, path="tasks[3]")
    assert err.value.field == "tasks[3].handler"


def test_task_ids_are_time_ordered_uuid7() -> None:
    ids = [new_task_id() for _ in range(1000)]
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert len(set(ids)) == 1000
    first, last = ids[0], ids[-1]
    assert first[:8] <= last[:8]


def test_parse_task_id_rejects_garbage_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_task_id("nope", "task_ids[2]")
    assert err.value.field == "task_ids[2]"


def test_dispatch_blob_round_trips() -> None:
    blob = DispatchBlob("id", "h", '{"a": [1, null]}', 4, 2.5, RetryPolicy(), max_retries_set=False)
    assert DispatchBlob.decode("id", blob.encode()) == blob


@pytest.mark.parametrize(
    "blob",
    [
        DispatchBlob("id", "h", "null", 0, 0.0, RetryPolicy()),
        DispatchBlob(
            "id",
            'app.tasks:send "quoted" \\ é 𝄞 \u2028',
            "[1]",
            1000,
            604800,
            RetryPolicy(initial_seconds=1e-05, multiplier=1.5, max_seconds=0.1),
            max_retries_set=False,
            run_id="run-1",
            step='step "two"',
            due_ms=1_767_225_600_123,
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        DispatchBlob("id", "h", "{}", 3, 2.5, RetryPolicy(), run_id="r", step=None),
    ],
)
def test_dispatch_blob_header_is_the_json_of_its_settings(blob: DispatchBlob) -> None:
    header, _, payload = blob.encode().partition("\n")
    fields: dict[str, object] = {
        "h": blob.handler,
        "r": blob.max_retries,
        "rs": blob.max_retries_set,
        "t": blob.timeout_seconds,
        "b": [blob.retry.initial_seconds, blob.retry.multiplier, blob.retry.max_seconds],
    }
    if blob.run_id:
        fields["d"] = [blob.run_id, blob.step]
    if blob.due_ms:
        fields["q"] = blob.due_ms
    if blob.traceparent:
        fields["tp"] = blob.traceparent
    assert header == json.dumps(fields, separators=(",", ":"))
    assert payload == blob.payload_json
    assert DispatchBlob.decode("id", blob.encode()) == blob


def test_settings_come_from_the_environment_then_flags() -> None:
    env = {"TASKFLOW_LEASE_SECONDS": "7.5", "TASKFLOW_REDIS_URL": "redis://r:1/0"}
    settings = Settings.from_env(env, redis_url="redis://flag:2/0")
    assert settings.lease_seconds == 7.5
    assert settings.redis_url == "redis://flag:2/0"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="TASKFLOW_LEASE_SECONDS: expected float"):
        Settings.from_env({"TASKFLOW_LEASE_SECONDS": "soon"})
