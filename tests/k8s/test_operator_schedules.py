"""``TaskQueue.spec.schedules`` on a real control plane: kept in sync with the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from taskflow.engine import Engine
from taskflow.scheduling.models import validate_schedule
from taskflow.scheduling.service import ScheduleService
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    await_,
    operator_config,
    taskqueue,
)

TIMEOUT = 60.0

NIGHTLY: dict[str, Any] = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "Europe/Paris",
    "concurrencyPolicy": "Forbid",
    "task": {"handler": "generate_report", "payload": {"day": "yesterday"}, "priority": 5},
}
ETL: dict[str, Any] = {
    "name": "etl",
    "cron": "30 2 * * *",
    "dag": {
        "failurePolicy": "continue",
        "steps": [
            {"name": "extract", "handler": "collect"},
            {"name": "load", "handler": "collect", "dependsOn": ["extract"]},
        ],
    },
}


def schedule_status(objects: Objects, queue: str) -> dict[str, dict[str, Any]]:
    body = objects.get("taskqueues", queue) or {}
    return {e["name"]: e for e in (body.get("status") or {}).get("schedules") or []}


def warnings(objects: Objects, name: str) -> list[str]:
    found = objects.core.list_namespaced_event(
        objects.namespace, field_selector=f"involvedObject.name={name}"
    )
    return [e.message or "" for e in found.items if e.type == "Warning"]


async def test_declared_schedules_appear_in_the_engine_and_disappear_when_removed(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    service = ScheduleService(engine)

    async def names() -> dict[str, str]:
        rows, _ = await service.list_page(k8s_namespace, 100)
        return {r.name: r.spec.owner for r in rows}

    # A schedule made through the API in the same namespace: never touched by the operator.
    await service.put(
        validate_schedule(
            namespace=k8s_namespace,
            name="by-hand",
            cron="*/5 * * * *",
            target={"queue": "reports", "handler": "noop"},
        )
    )
    running = await asyncio.to_thread(
        RunningOperator(operator_config(k8s_kubeconfig, k8s_namespace)).start
    )
    try:
        objects.create("taskqueues", taskqueue("reports", schedules=[NIGHTLY, ETL]))

        def synced() -> bool:
            st = schedule_status(objects, "reports")
            return set(st) == {"nightly", "etl"} and all(e["synced"] for e in st.values())

        await await_(synced, TIMEOUT, "schedules synced")
        owner = f"k8s:taskqueue:{k8s_namespace}/reports"
        assert await names() == {"by-hand": "", "reports.nightly": owner, "reports.etl": owner}
        nightly = await service.get(k8s_namespace, "reports.nightly")
        assert nightly.spec.timezone == "Europe/Paris"
        assert nightly.spec.concurrency_policy.value == "Forbid"
        task = nightly.spec.task()
        assert (task.queue, task.handler, task.priority) == ("reports", "generate_report", 5)
        etl = (await service.get(k8s_namespace, "reports.etl")).spec.dag()
        assert etl.failure_policy == "continue" and [s.name for s in etl.steps] == [
            "extract",
            "load",
        ]
        st = schedule_status(objects, "reports")
        assert st["nightly"]["schedule"] == "reports.nightly"
        assert st["nightly"]["nextFireTime"].endswith("Z")
        assert st["nightly"]["fires"] == 0 and "lastFireTime" not in st["nightly"]

        # An edit updates the engine's schedule; a bad cron leaves the engine as it was and
        # says why, naming the field.
        edited = {**NIGHTLY, "cron": "0 4 * * *"}
        objects.patch("taskqueues", "reports", {"spec": {"schedules": [edited, ETL]}})

        async def cron() -> str:
            return (await service.get(k8s_namespace, "reports.nightly")).spec.cron

        await until(lambda: cron(), "0 4 * * *", "cron updated")
        bad = {**ETL, "cron": "99 * * * *"}
        objects.patch("taskqueues", "reports", {"spec": {"schedules": [edited, bad]}})
        await await_(
            lambda: (
                "spec.schedules[1].cron"
                in (schedule_status(objects, "reports").get("etl") or {}).get("message", "")
            ),
            TIMEOUT,
            "bad cron reported",
        )
        assert not schedule_status(objects, "reports")["etl"]["synced"]
        await await_(
            lambda: any(
                m.startswith("spec.schedules[1].cron: ") for m in warnings(objects, "reports")
            ),
            TIMEOUT,
            "a warning naming the field",
        )
        assert set(await names()) == {"by-hand", "reports.nightly", "reports.etl"}

        # A name taken by a schedule the queue does not own is reported, not taken over.
        await service.put(
            validate_schedule(
                namespace=k8s_namespace,
                name="reports.taken",
                cron="0 1 * * *",
                target={"queue": "reports", "handler": "noop"},
            )
        )
        taken = {"name": "taken", "cron": "0 2 * * *", "task": {"handler": "noop"}}
        objects.patch("taskqueues", "reports", {"spec": {"schedules": [edited, taken]}})

        def refused() -> str:
            return str((schedule_status(objects, "reports").get("taken") or {}).get("message"))

        await await_(lambda: "already exists" in refused(), TIMEOUT, "taken name refused")
        assert "managed by the API" in refused()
        assert schedule_status(objects, "reports")["nightly"]["synced"]
        assert (await service.get(k8s_namespace, "reports.taken")).spec.cron == "0 1 * * *"
        await service.delete(k8s_namespace, "reports.taken")

        # Removed from the list: gone from the engine.
        objects.patch("taskqueues", "reports", {"spec": {"schedules": [edited]}})
        await await_(
            lambda: set(schedule_status(objects, "reports")) == {"nightly"}, TIMEOUT, "etl removed"
        )
        assert set(await names()) == {"by-hand", "reports.nightly"}

        # The queue deleted: its schedules go with it, the hand-made one stays.
        objects.delete("taskqueues", "reports")
        await until(lambda: _keys(names()), {"by-hand"}, "the queue's schedules deleted")
    finally:
        await asyncio.to_thread(running.stop)
    assert running.error is None, running.error


async def _keys(names: Awaitable[dict[str, str]]) -> set[str]:
    return set(await names)


async def until(read: Callable[[], Awaitable[Any]], wanted: Any, what: str) -> None:
    """Poll an engine read until it returns ``wanted`` (a deadline, not a sleep)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (got := await read()) != wanted:
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(f"{what}: still {got!r} after {TIMEOUT:.0f}s")
        await asyncio.sleep(0.1)


@pytest.mark.slow  # waits for the next minute boundary
async def test_a_fired_schedule_shows_its_last_fire_in_the_queue_status(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    """With the scheduler running (housekeeping on), an every-minute schedule fires at the
    next minute boundary; the TaskQueue's status then names the tick and the task it fired."""
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(k8s_kubeconfig, k8s_namespace, housekeeping=True)
    running = await asyncio.to_thread(RunningOperator(config).start)
    try:
        every = {"name": "tick", "cron": "* * * * *", "task": {"handler": "noop"}}
        objects.create("taskqueues", taskqueue("beats", schedules=[every]))

        def fired() -> dict[str, Any] | None:
            entry = schedule_status(objects, "beats").get("tick") or {}
            return entry if entry.get("lastFiredId") else None

        entry = await await_(fired, 150.0, "the schedule fired and its status says so")
        assert entry["fires"] >= 1 and entry["lastFireTime"].endswith(":00Z")
        assert entry["nextFireTime"] > entry["lastFireTime"]
        task = await engine.get(entry["lastFiredId"])
        assert (task.namespace, task.queue, task.handler) == (k8s_namespace, "beats", "noop")
        assert task.labels["taskflow.dev/schedule"] == "beats.tick"
    finally:
        await asyncio.to_thread(running.stop)
    assert running.error is None, running.error
