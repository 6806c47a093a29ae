"""Task resources on a real control plane, run by in-process workers on the test stores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TaskState
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    await_,
    extra_namespace,
    operator_config,
    task,
    taskqueue,
)

TIMEOUT = 30.0


async def start_operator(config: Any) -> RunningOperator:
    return await asyncio.to_thread(RunningOperator(config).start)


class TaskLists:
    """Counts the operator's LIST requests for Tasks. Every LIST of a custom resource the
    operator makes goes through ``Kube.list_objects``; kopf's watches (which feed mirroring and
    the TTL) list through kopf's own client and are not counted. The API server's own request
    counter cannot tell clients apart: the namespace controller lists every resource of the
    namespaces other tests delete meanwhile."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from taskflow_operator.kube import Kube

        self.count = 0
        original = Kube.list_objects

        async def counted(kube: Kube, plural: str, namespace: str | None) -> list[dict[str, Any]]:
            if plural == "tasks":
                self.count += 1
            return await original(kube, plural, namespace)

        monkeypatch.setattr(Kube, "list_objects", counted)


def phase_of_queue(objects: Objects, name: str) -> bool:
    return bool((objects.get("taskqueues", name) or {}).get("status"))


def phase(objects: Objects, name: str) -> str | None:
    obj = objects.get("tasks", name) or {}
    return (obj.get("status") or {}).get("phase")


async def test_task_runs_to_success_and_cross_namespace_targets_are_refused(
    engine: Engine,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    k8s_kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lists = TaskLists(monkeypatch)
    objects = Objects(k8s_api, k8s_namespace)
    with extra_namespace(k8s_api, k8s_namespace + "-b") as other:
        others = Objects(k8s_api, other)
        op = await start_operator(operator_config(k8s_kubeconfig, k8s_namespace, other))
        stop = asyncio.Event()
        worker = Worker(
            router,
            engine.settings,
            WorkerConfig(queues=[QueueRef(k8s_namespace, "work")], concurrency=4),
        )
        running = asyncio.create_task(worker.run(stop))
        try:
            objects.create("taskqueues", taskqueue("work"))
            await await_(lambda: phase_of_queue(objects, "work"), TIMEOUT, "queue reconciled")
            objects.create(
                "tasks", task("add", "work", "add", {"a": 2, "b": 3}, ttlSecondsAfterFinished=3)
            )
            await await_(lambda: phase(objects, "add") == "Succeeded", TIMEOUT, "task succeeded")
            status = (objects.get("tasks", "add") or {})["status"]
            assert status["result"] == 5
            assert status["attempts"] == 1
            assert status["completionTime"]
            record = await engine.get(status["taskId"])
            assert record.namespace == k8s_namespace and record.state is TaskState.SUCCEEDED

            # ttlSecondsAfterFinished deletes the finished Task.
            try:
                await await_(lambda: objects.get("tasks", "add") is None, TIMEOUT, "ttl deletion")
            except AssertionError as exc:
                left = objects.get("tasks", "add")
                raise AssertionError(f"{exc}; the Task is now {left}") from None
            # Neither mirroring nor the TTL listed Tasks: kopf's watch feeds both.
            assert lists.count == 0

            # The queue exists only in the first namespace: the second one's Task waits for it.
            others.create("tasks", task("stray", "work", "add", {"a": 1, "b": 1}))
            await await_(lambda: phase(others, "stray") == "Pending", TIMEOUT, "stray waits")
            cond = others.condition("tasks", "stray", "Submitted")
            assert cond is not None and (cond["status"], cond["reason"]) == (
                "False",
                "QueueNotFound",
            )
            assert (await engine.queue_stats(QueueRef(other, "work"))).backlog == 0
            # Its TaskQueue appears: it is submitted (no worker serves that namespace).
            others.create("taskqueues", taskqueue("work"))
            await await_(lambda: phase(others, "stray") == "Queued", 90, "stray submitted")
            assert (await engine.queue_stats(QueueRef(other, "work"))).backlog == 1
        finally:
            stop.set()
            await running
            await asyncio.to_thread(op.stop)
        assert op.error is None


async def test_deleting_a_waiting_task_cancels_it_and_restarts_never_submit_twice(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(k8s_kubeconfig, k8s_namespace)
    objects.create("taskqueues", taskqueue("idle"))  # no worker claims this queue
    op = await start_operator(config)
    try:
        for i in range(3):
            objects.create("tasks", task(f"t{i}", "idle", "noop"))
        for i in range(3):
            await await_(lambda i=i: phase(objects, f"t{i}") == "Queued", TIMEOUT, f"t{i} queued")
        first_id = (objects.get("tasks", "t0") or {})["status"]["taskId"]

        objects.delete("tasks", "t2")
        await await_(lambda: objects.get("tasks", "t2") is None, TIMEOUT, "t2 deleted")
    finally:
        await asyncio.to_thread(op.stop)

    # Lose everything the operator wrote about t0, as if it died between submit and status
    # write, then start a new operator: it submits again and gets the same task back.
    body = objects.get("tasks", "t0") or {}
    marks = {
        k: None for k in body["metadata"].get("annotations", {}) if k.startswith("taskflow.dev/")
    }
    objects.patch("tasks", "t0", {"metadata": {"annotations": marks}})
    objects.custom.patch_namespaced_custom_object_status(
        "taskflow.dev", "v1alpha1", k8s_namespace, "tasks", "t0", {"status": None}
    )
    assert phase(objects, "t0") is None
    op = await start_operator(config)
    try:
        await await_(lambda: phase(objects, "t0") == "Queued", TIMEOUT, "t0 re-examined")
        assert (objects.get("tasks", "t0") or {})["status"]["taskId"] == first_id
    finally:
        await asyncio.to_thread(op.stop)

    records, _ = await engine.list_tasks(
        namespace=k8s_namespace, queue="idle", states=[], page_size=100, page_token=None
    )
    states = sorted(r.state.value for r in records)
    assert states == ["cancelled", "queued", "queued"]
