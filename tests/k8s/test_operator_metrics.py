"""The operator's ``/metrics`` follows a queue's backlog and its autoscaler's decisions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kubernetes import client

from taskflow.embedded import free_port
from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TaskState
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig
from tests.k8s.operator_support import Objects, RunningOperator, operator_config, taskqueue
from tests.k8s.test_operator_scaling import submit
from tests.observability.scrape import Samples, scrape, scrape_until


async def test_operator_metrics_follow_backlog_and_scaling(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    ref = QueueRef(k8s_namespace, "jobs")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    config = operator_config(k8s_kubeconfig, k8s_namespace, http_port=port)
    op = await asyncio.to_thread(RunningOperator(config).start)
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    q = {"namespace": k8s_namespace, "queue": "jobs"}

    def decisions(s: Samples, reason: str) -> float:
        return s("taskflow_operator_autoscaler_decisions_total", **q, reason=reason)

    try:
        objects.create(
            "taskqueues",
            taskqueue(
                "jobs",
                concurrency=2,
                replicas={"min": 0, "max": 3},
                autoscaling={
                    "targetPerPod": 2,
                    "scaleDownStabilizationSeconds": 2,
                    "pollIntervalSeconds": 0.5,
                },
            ),
        )
        await scrape_until(url, lambda s: decisions(s, "Idle") + decisions(s, "Steady") >= 1)
        ids = await submit(engine, k8s_namespace, "jobs", 4, "noop", None)
        grown = await scrape_until(
            url,
            lambda s: (
                s("taskflow_operator_queue_backlog", **q) == 4
                and s("taskflow_operator_queue_desired_replicas", **q) == 2
            ),
        )
        assert decisions(grown, "BacklogGrew") >= 1
        assert grown("taskflow_operator_scalings_total", direction="up") >= 1
        # the task metrics of the process (housekeeping runs here) are served too
        assert "taskflow_lease_expirations" in grown.names()

        worker = Worker(router, engine.settings, WorkerConfig(queues=[ref], concurrency=4))
        worker_task = asyncio.create_task(worker.run(stop))
        for task_id in ids:
            deadline = time.monotonic() + 30
            while (await engine.get(task_id)).state is not TaskState.SUCCEEDED:
                assert time.monotonic() < deadline, f"task {task_id} not done"
                await asyncio.sleep(0.1)
        shrunk = await scrape_until(
            url,
            lambda s: (
                s("taskflow_operator_queue_backlog", **q) == 0
                and s("taskflow_operator_queue_desired_replicas", **q) == 0
            ),
        )
        assert decisions(shrunk, "Stabilizing") >= 1  # it waited out the window first
        assert shrunk("taskflow_operator_scalings_total", direction="down") >= 1
        last = await scrape(url)
        assert last("taskflow_operator_reconcile_errors_total", kind="TaskQueue") == 0
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        await asyncio.to_thread(op.stop)
    assert op.error is None
