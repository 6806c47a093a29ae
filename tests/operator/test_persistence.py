from __future__ import annotations

from typing import Any

import kopf

from taskflow_operator.persistence import TaskDiffBaseStorage, TaskProgressStorage

STORAGE = TaskDiffBaseStorage(prefix="taskflow.dev", key="last-handled-configuration")


def body(kind: str, status: dict[str, Any] | None = None) -> kopf.Body:
    raw = {
        "apiVersion": "taskflow.dev/v1alpha1",
        "kind": kind,
        "metadata": {"namespace": "ns", "name": "x", "uid": "u", "annotations": {}},
        "spec": {"queue": "q", "handler": "h", "payload": {"big": "x" * 1000}},
        "status": status or {},
    }
    return kopf.Body(raw)  # type: ignore[arg-type]


def test_a_task_is_new_until_its_status_shows_it_was_handled() -> None:
    assert STORAGE.fetch(body=body("Task")) is None
    submitted = body("Task", {"taskId": "t", "phase": "Queued"})
    assert STORAGE.fetch(body=submitted) == STORAGE.build(body=submitted)
    refused = body("Task", {"phase": "Failed"})
    assert STORAGE.fetch(body=refused) == STORAGE.build(body=refused)


def test_nothing_is_written_for_a_task_but_other_kinds_keep_the_annotation() -> None:
    task = body("Task", {"taskId": "t"})
    patch = kopf.Patch()
    STORAGE.store(body=task, patch=patch, essence=STORAGE.build(body=task))
    assert not patch

    queue = body("TaskQueue")
    STORAGE.store(body=queue, patch=patch, essence=STORAGE.build(body=queue))
    assert "taskflow.dev/last-handled-configuration" in patch["metadata"]["annotations"]


def test_progress_of_a_task_leaves_no_marker_behind() -> None:
    storage = TaskProgressStorage(prefix="taskflow.dev")
    patch = kopf.Patch()
    storage._store_marker(prefix="taskflow.dev", patch=patch, body=body("Task"))
    assert not patch
    storage._store_marker(prefix="taskflow.dev", patch=patch, body=body("TaskQueue"))
    assert patch["metadata"]["annotations"] == {"taskflow.dev/kopf-managed": "yes"}


def test_kopf_does_not_post_its_info_lines_about_tasks_as_events() -> None:
    import logging

    from taskflow_operator.handlers.task import QuietTasks

    def record(level: int, kind: str) -> logging.LogRecord:
        r = logging.LogRecord("kopf.objects", level, "", 0, "Handler succeeded.", None, None)
        r.k8s_ref = {"kind": kind, "name": "x"}
        return r

    quiet = QuietTasks()
    assert not quiet.filter(record(logging.INFO, "Task"))
    assert quiet.filter(record(logging.WARNING, "Task"))
    assert quiet.filter(record(logging.INFO, "TaskQueue"))
