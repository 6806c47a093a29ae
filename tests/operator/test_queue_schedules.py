"""What a TaskQueue's ``spec.schedules`` becomes in the engine, and what a bad one reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskflow.scheduling.models import ScheduleRecord
from taskflow_operator.reconcile.schedules import (
    declared,
    engine_name,
    owner_of,
    schedule_status,
)


def queue(*schedules: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns1", "name": "reports"},
        "spec": {"schedules": list(schedules)},
    }


def test_task_and_dag_schedules_fire_on_their_queue_and_are_owned_by_it() -> None:
    d = declared(
        queue(
            {
                "name": "nightly",
                "cron": "0 3 * * *",
                "timezone": "Europe/Paris",
                "concurrencyPolicy": "Forbid",
                "task": {"handler": "build_report", "payload": {"day": "yesterday"}},
            },
            {
                "name": "etl",
                "cron": "30 2 * * *",
                "dag": {
                    "steps": [
                        {"name": "extract", "handler": "collect"},
                        {"name": "load", "handler": "collect", "dependsOn": ["extract"]},
                    ]
                },
            },
        )
    )
    assert d.valid and d.names == ["nightly", "etl"]
    nightly, etl = d.specs["nightly"], d.specs["etl"]
    assert nightly.name == engine_name("reports", "nightly") == "reports.nightly"
    assert nightly.owner == owner_of("ns1", "reports") and nightly.namespace == "ns1"
    assert nightly.task().queue == "reports" and nightly.task().payload == {"day": "yesterday"}
    assert nightly.timezone == "Europe/Paris" and nightly.concurrency_policy.value == "Forbid"
    run = etl.dag()
    assert [s.name for s in run.steps] == ["extract", "load"]
    assert all(s.task.queue == "reports" for s in run.steps)


def test_a_bad_schedule_names_its_field() -> None:
    d = declared(
        queue(
            {"name": "ok", "cron": "0 3 * * *", "task": {"handler": "h"}},
            {"name": "bad", "cron": "61 * * * *", "task": {"handler": "h"}},
            {
                "name": "zone",
                "cron": "0 3 * * *",
                "timezone": "Mars/Base",
                "task": {"handler": "h"},
            },
            {
                "name": "loop",
                "cron": "0 3 * * *",
                "dag": {
                    "steps": [
                        {"name": "a", "handler": "h", "dependsOn": ["b"]},
                        {"name": "b", "handler": "h", "dependsOn": ["a"]},
                    ]
                },
            },
        )
    )
    assert not d.valid
    assert set(d.problems) == {"bad", "zone", "loop"}
    assert d.problems["bad"].startswith("spec.schedules[1].cron: ")
    assert d.problems["zone"].startswith("spec.schedules[2].timezone: ")
    assert d.problems["loop"].startswith("spec.schedules[3].dag.steps: ")
    assert "cycle" in d.problems["loop"]


def test_status_shows_next_and_last_fire_and_what_is_not_synced() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    d = declared(queue({"name": "nightly", "cron": "0 3 * * *", "task": {"handler": "h"}}))
    spec = d.specs["nightly"]
    record = ScheduleRecord(
        id="s1",
        spec=spec,
        revision=1,
        created_at=now,
        updated_at=now,
        next_fire_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        last_fire_tick=datetime(2026, 3, 1, 3, 0, tzinfo=UTC),
        last_task_id="t-1",
        fire_count=4,
    )
    entry = schedule_status("reports", "nightly", d, record, now)
    assert entry == {
        "name": "nightly",
        "schedule": "reports.nightly",
        "synced": True,
        "nextFireTime": "2026-03-02T03:00:00Z",
        "lastFireTime": "2026-03-01T03:00:00Z",
        "lastFiredId": "t-1",
        "fires": 4,
        "skips": 0,
    }
    pending = schedule_status("reports", "nightly", d, None, now)
    assert pending == {
        "name": "nightly",
        "schedule": "reports.nightly",
        "synced": False,
        "message": "not synced yet",
    }
