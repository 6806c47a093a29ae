from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from taskflow.models import RetryPolicy, TaskRecord, TaskState
from taskflow_operator.crd.task import TaskSpec
from taskflow_operator.crd.taskqueue import TaskQueueSpec
from taskflow_operator.reconcile.tasks import idempotency_key, submission
from taskflow_operator.reconcile.ttl import expiry
from taskflow_operator.taskstatus import mirrored_status, rejected_status, status_changed

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def record(state: TaskState, **kw: object) -> TaskRecord:
    base = TaskRecord(
        id="0190a000-0000-7000-8000-000000000001", namespace="ns", queue="q", handler="h",
        state=state, payload_json="null", priority=0, attempts=1, failures=0, max_retries=3,
        timeout_seconds=0, retry=RetryPolicy(), idempotency_key=None, concurrency_key=None,
        concurrency_limit=None, labels={}, created_at=NOW, run_at=None, started_at=NOW,
        finished_at=None, updated_at=NOW,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_running_task_reads_as_running() -> None:
    s = mirrored_status(record(TaskState.RUNNING), NOW)
    assert s["phase"] == "Running"
    assert s["taskId"].startswith("0190a000")
    assert s["startTime"] == "2030-01-01T00:00:00Z"
    assert s["completionTime"] is None
    assert {c["type"]: c["status"] for c in s["conditions"]} == {
        "Submitted": "True",
        "Finished": "False",
    }


def test_success_carries_result_and_completion() -> None:
    done = record(TaskState.SUCCEEDED, result_json='{"ok": 1}', finished_at=NOW, attempts=2)
    s = mirrored_status(done, NOW)
    assert (s["phase"], s["result"], s["attempts"]) == ("Succeeded", {"ok": 1}, 2)
    assert s["completionTime"] == "2030-01-01T00:00:00Z"


def test_failure_carries_error() -> None:
    s = mirrored_status(record(TaskState.FAILED, error="boom", finished_at=NOW), NOW)
    assert (s["phase"], s["error"]) == ("Failed", "boom")
    finished = next(c for c in s["conditions"] if c["type"] == "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "Failed")


def test_due_scheduled_task_reads_as_queued() -> None:
    s = mirrored_status(record(TaskState.SCHEDULED, run_at=NOW - timedelta(seconds=1)), NOW)
    assert s["phase"] == "Queued"


def test_unchanged_engine_state_needs_no_write() -> None:
    first = mirrored_status(record(TaskState.RUNNING), NOW)
    again = mirrored_status(
        record(TaskState.RUNNING), NOW + timedelta(seconds=5), first["conditions"]
    )
    assert not status_changed(first, again)
    later = mirrored_status(record(TaskState.SUCCEEDED, finished_at=NOW), NOW, first["conditions"])
    assert status_changed(first, later)


def test_queue_not_found_is_a_failed_phase_with_the_reason() -> None:
    s = rejected_status("QueueNotFound", "no TaskQueue 'q' in namespace ns")
    assert s["phase"] == "Failed"
    submitted = next(c for c in s["conditions"] if c["type"] == "Submitted")
    assert (submitted["status"], submitted["reason"]) == ("False", "QueueNotFound")


def test_submission_uses_queue_defaults_and_the_uid_key() -> None:
    queue = TaskQueueSpec.model_validate(
        {"image": "i", "app": "a:b", "connection": {"secretName": "s"},
         "retry": {"maxRetries": 7}, "taskTimeoutSeconds": 12}
    )  # fmt: skip
    spec = TaskSpec.model_validate({"queue": "q", "handler": "h", "payload": [1, {"x": None}]})
    raw = submission("ns", "uid-9", "t1", spec, queue)
    assert raw["idempotency_key"] == idempotency_key("uid-9") == "k8s-task-uid-9"
    assert (raw["max_retries"], raw["timeout_seconds"], raw["namespace"]) == (7, 12, "ns")
    assert raw["payload"] == [1, {"x": None}]
    own = TaskSpec.model_validate(
        {"queue": "q", "handler": "h", "maxRetries": 0, "timeoutSeconds": 1}
    )
    assert submission("ns", "u", "t", own, queue)["max_retries"] == 0


def test_ttl_expiry() -> None:
    body = {
        "spec": {"ttlSecondsAfterFinished": 30},
        "status": {"phase": "Succeeded", "completionTime": "2030-01-01T00:00:00Z"},
    }
    assert expiry(body) == NOW + timedelta(seconds=30)
    body["status"]["phase"] = "Running"
    assert expiry(body) is None
