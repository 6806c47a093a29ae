"""Autoscaling from a real backlog: pods sit on kwok nodes, in-process workers claim the queue."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch

from taskflow.api import ApiServer
from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TaskState, validate_submission
from taskflow_client import AsyncClient
from taskflow_operator.builders.common import DELETION_COST, selector
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig
from tests.k8s.controlplane import asset_dir
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    await_,
    operator_config,
    task,
    taskqueue,
)
from tests.k8s.test_operator_task import phase

STORY_LOG = Path("/tmp/taskflow-operator-story.txt")


class PodWatch:
    """Records, per pod, whether its deletion cost was set before it started terminating."""

    def __init__(self, core: client.CoreV1Api, namespace: str, label_selector: str) -> None:
        self.annotated_first: dict[str, bool] = {}
        self._annotated: set[str] = set()
        self._stopping = False
        self._watch = watch.Watch()
        self._thread = threading.Thread(
            target=self._run, args=(core, namespace, label_selector), daemon=True
        )
        self._thread.start()

    def _run(self, core: client.CoreV1Api, namespace: str, label_selector: str) -> None:
        # An ERROR event (e.g. 410 Gone: the watch's resource version is too old) carries no
        # pod and ends that watch: list and watch again, as a controller would.
        while not self._stopping:
            stream = self._watch.stream(
                core.list_namespaced_pod,
                namespace,
                label_selector=label_selector,
                timeout_seconds=300,
            )
            try:
                for event in stream:
                    if event["type"] == "ERROR" or event.get("object") is None:
                        break
                    self._record(event)
                else:
                    return  # stopped, or the server's timeout ended the watch
            except urllib3.exceptions.ProtocolError:
                if not self._stopping:
                    raise  # the API server cut the watch while the test still relied on it

    def _record(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        name = pod.metadata.name
        if DELETION_COST in (pod.metadata.annotations or {}):
            self._annotated.add(name)
        terminating = pod.metadata.deletion_timestamp is not None or event["type"] == "DELETED"
        if terminating and name not in self.annotated_first:
            self.annotated_first[name] = name in self._annotated

    def stop(self) -> None:
        self._stopping = True
        self._watch.stop()


def replicas(objects: Objects, name: str) -> int | None:
    dep = objects.deployment(name)
    return None if dep is None else int(dep.spec.replicas or 0)


async def submit(
    engine: Engine, namespace: str, queue: str, n: int, handler: str, payload: Any
) -> list[str]:
    specs = [
        validate_submission(
            {"namespace": namespace, "queue": queue, "handler": handler, "payload": payload}
        )
        for _ in range(n)
    ]
    ids: list[str] = []
    for i in range(0, n, 500):
        ids += [r.task_id for r in await engine.submit(specs[i : i + 500])]
    return ids


async def test_scales_up_from_zero_down_after_the_window_to_zero_and_back(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    ref = QueueRef(k8s_namespace, "jobs")
    op = await asyncio.to_thread(
        RunningOperator(operator_config(k8s_kubeconfig, k8s_namespace)).start
    )
    pods = PodWatch(objects.core, k8s_namespace, selector("jobs"))
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    try:
        objects.create(
            "taskqueues",
            taskqueue(
                "jobs",
                concurrency=2,
                replicas={"min": 0, "max": 3},
                autoscaling={"scaleDownStabilizationSeconds": 3, "pollIntervalSeconds": 0.5},
            ),
        )
        await await_(lambda: replicas(objects, "jobs-workers") == 0, 30, "created at zero")

        ids = await submit(engine, k8s_namespace, "jobs", 6, "sleep", {"seconds": 1})
        await await_(lambda: replicas(objects, "jobs-workers") == 3, 15, "scaled up to max")

        worker = Worker(router, engine.settings, WorkerConfig(queues=[ref], concurrency=6))
        worker_task = asyncio.create_task(worker.run(stop))
        for task_id in ids:
            deadline = time.monotonic() + 30
            while (await engine.get(task_id)).state is not TaskState.SUCCEEDED:
                assert time.monotonic() < deadline, f"task {task_id} not done"
                await asyncio.sleep(0.1)

        await await_(lambda: replicas(objects, "jobs-workers") == 0, 30, "scaled to zero")
        tq = objects.get("taskqueues", "jobs") or {}
        assert tq["status"]["backlog"] == 0
        await await_(lambda: len(pods.annotated_first) == 3, 30, "three pods terminated")
        assert all(pods.annotated_first.values()), pods.annotated_first

        stop.set()
        await worker_task
        worker_task = None
        await submit(engine, k8s_namespace, "jobs", 1, "noop", None)
        await await_(lambda: (replicas(objects, "jobs-workers") or 0) >= 1, 10, "back to one")
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        pods.stop()
        await asyncio.to_thread(op.stop)
    assert op.error is None


def kubectl(kubeconfig: Path, *args: str) -> str:
    out = subprocess.run(
        [str(asset_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return out.stdout + out.stderr


@pytest.mark.slow
async def test_whole_story_two_thousand_tasks(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    ref = QueueRef(k8s_namespace, "story")
    log_path = STORY_LOG.with_suffix(".operator.log")
    log_path.unlink(missing_ok=True)
    op = await asyncio.to_thread(
        RunningOperator(operator_config(k8s_kubeconfig, k8s_namespace), log_path).start
    )
    stop = asyncio.Event()
    seen: list[int] = []
    report: list[str] = []
    servers: list[ApiServer] = []
    try:
        objects.create(
            "taskqueues",
            taskqueue(
                "story",
                concurrency=50,
                replicas={"min": 0, "max": 5},
                autoscaling={"scaleDownStabilizationSeconds": 3, "pollIntervalSeconds": 0.5},
            ),
        )
        await await_(lambda: replicas(objects, "story-workers") == 0, 30, "created at zero")
        # 2,000 tasks through the public gRPC API, in batches, as an application would.
        api = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
        await api.start()
        servers.append(api)
        async with AsyncClient(f"127.0.0.1:{api.grpc_port}", namespace=k8s_namespace) as grpc:
            ids = []
            for _ in range(4):
                ids += await grpc.submit_many(
                    [{"queue": "story", "handler": "noop"} for _ in range(500)]
                )
        objects.create("tasks", task("story-report", "story", "add", {"a": 40, "b": 2}))
        await await_(lambda: replicas(objects, "story-workers") == 5, 15, "scaled up from zero")
        report.append(kubectl(k8s_kubeconfig, "get", "tq,tasks", "-n", k8s_namespace, "-o", "wide"))
        worker = Worker(router, engine.settings, WorkerConfig(queues=[ref], concurrency=100))
        running = asyncio.create_task(worker.run(stop))

        async def all_done() -> bool:
            stats = await engine.queue_stats(ref)
            seen.append(replicas(objects, "story-workers") or 0)
            return stats.succeeded == len(ids) + 1 and phase(objects, "story-report") == "Succeeded"

        deadline = time.monotonic() + 120
        while not await all_done():
            assert time.monotonic() < deadline, await engine.queue_stats(ref)
            await asyncio.sleep(0.2)
        report.append(kubectl(k8s_kubeconfig, "get", "tq,tasks", "-n", k8s_namespace, "-o", "wide"))
        await await_(lambda: replicas(objects, "story-workers") == 0, 30, "back to zero")
        report.append(kubectl(k8s_kubeconfig, "get", "tq,tasks", "-n", k8s_namespace, "-o", "wide"))
        report.append(kubectl(k8s_kubeconfig, "get", "events", "-n", k8s_namespace))
        stop.set()
        await running
    finally:
        stop.set()
        for api in servers:
            await api.stop(1)
        await asyncio.to_thread(op.stop)
    stats = await engine.queue_stats(ref)
    assert (stats.succeeded, stats.failed, stats.backlog) == (2001, 0, 0)
    STORY_LOG.write_text("\n\n".join(report) + "\n\n# operator log\n" + log_path.read_text())
