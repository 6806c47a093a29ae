"""DagRun resources on a real control plane, run by in-process workers on the test stores."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.workflows.service import DagService
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd import GROUP, VERSION
from taskflow_operator.kube import Kube, load_configuration
from taskflow_operator.metrics import OperatorMetrics
from taskflow_operator.reconcile.dagruns import DagRunFollower
from taskflow_worker import PermanentError, Router, TaskContext
from taskflow_worker.examples import router as examples
from taskflow_worker.runtime import Worker, WorkerConfig
from tests.k8s.controlplane import asset_dir, eventually
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    await_,
    operator,
    operator_config,
    taskqueue,
)
from tests.k8s.test_operator_as_a_user import (
    Records,
    account_kubeconfig,
    apply_docs,
    rendered,
)

TIMEOUT = 60.0
PLURAL = "dagruns"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "k8s" / "dagrun.yaml"


def dagrun(name: str, queue: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DagRun",
        "metadata": {"name": name},
        "spec": {"queue": queue, "steps": steps, **spec},
    }


DIAMOND: list[dict[str, Any]] = [
    {"name": "fetch", "handler": "collect", "payload": {"url": "https://example.com/cat.png"}},
    {"name": "resize", "handler": "collect", "payload": {"sleep": 0.2}, "dependsOn": ["fetch"]},
    {"name": "scan", "handler": "collect", "payload": {"sleep": 0.1}, "dependsOn": ["fetch"]},
    {"name": "publish", "handler": "collect", "dependsOn": ["resize", "scan"]},
]


def kubectl(kubeconfig: Path, namespace: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(asset_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "-n", namespace, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def status(objects: Objects, name: str) -> dict[str, Any]:
    return dict((objects.get(PLURAL, name) or {}).get("status") or {})


def phase_is(objects: Objects, name: str, phase: str) -> Callable[[], bool]:
    return lambda: status(objects, name).get("phase") == phase


def events(objects: Objects, name: str) -> list[tuple[str, str, str]]:
    found = objects.core.list_namespaced_event(
        objects.namespace, field_selector=f"involvedObject.name={name}"
    )
    return [(str(e.type), str(e.reason), e.message or "") for e in found.items]


async def start_operator(config: Any) -> RunningOperator:
    return await asyncio.to_thread(RunningOperator(config).start)


@pytest.fixture
async def op(k8s_kubeconfig: Path, k8s_namespace: str, engine: Engine) -> AsyncIterator[None]:
    running = await start_operator(operator_config(k8s_kubeconfig, k8s_namespace))
    try:
        yield
    finally:
        await asyncio.to_thread(running.stop)
    assert running.error is None, running.error


@pytest.fixture
async def workers(engine: Engine, k8s_namespace: str) -> AsyncIterator[Callable[..., None]]:
    stop = asyncio.Event()
    started: list[asyncio.Task[None]] = []

    def start(router: Router, queue: str = "work") -> None:
        config = WorkerConfig(queues=[QueueRef(k8s_namespace, queue)], concurrency=4)
        started.append(asyncio.create_task(Worker(router, engine.settings, config).run(stop)))

    yield start
    stop.set()
    await asyncio.gather(*started)


async def test_the_example_dagrun_applied_with_kubectl_runs_to_succeeded(
    op: None,
    workers: Callable[..., None],
    engine: Engine,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    k8s_kubeconfig: Path,
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    objects.create("taskqueues", taskqueue("emails"))
    workers(examples, "emails")
    out = kubectl(k8s_kubeconfig, k8s_namespace, "apply", "-f", str(EXAMPLE))
    assert "dagrun.taskflow.dev/thumbnail created" in out

    await await_(phase_is(objects, "thumbnail", "Succeeded"), TIMEOUT, "the run succeeded")
    st = status(objects, "thumbnail")
    assert [(s["name"], s["phase"], s["attempts"]) for s in st["steps"]] == [
        ("fetch", "Succeeded", 1),
        ("resize", "Succeeded", 1),
        ("scan", "Succeeded", 1),
        ("publish", "Succeeded", 1),
    ]
    assert all(s["startTime"] and s["completionTime"] and s["taskId"] for s in st["steps"])
    assert st["progress"] == "4/4" and st["counts"]["succeeded"] == 4
    assert st["failedSteps"] == [] and st["skippedSteps"] == []
    assert st["startTime"] and st["completionTime"]
    finished = objects.condition(PLURAL, "thumbnail", "Finished")
    assert finished is not None and (finished["status"], finished["reason"]) == (
        "True",
        "Succeeded",
    )

    # The engine's record agrees, and respected the edges.
    run = await DagService(engine).get(st["runId"])
    assert run.state == "succeeded" and run.namespace == k8s_namespace
    steps = {s.name: s.task for s in run.steps}
    for child, parents in (
        ("resize", ["fetch"]),
        ("scan", ["fetch"]),
        ("publish", ["resize", "scan"]),
    ):
        for parent in parents:
            started, ended = steps[child].started_at, steps[parent].finished_at
            assert started is not None and ended is not None and started >= ended

    table = kubectl(k8s_kubeconfig, k8s_namespace, "get", "dr", "thumbnail")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "STEPS", "SUCCEEDED", "FAILED", "AGE"]
    assert row.split()[:5] == ["thumbnail", "Succeeded", "4/4", "4", "0"]
    explained = kubectl(k8s_kubeconfig, k8s_namespace, "explain", "dagrun.spec.steps.dependsOn")
    assert "Steps that must succeed before this one starts" in explained

    await await_(
        lambda: ("Normal", "Succeeded", "all 4 steps succeeded") in events(objects, "thumbnail"),
        TIMEOUT,
        "a Succeeded event",
    )


def gated_router(gate: dict[str, bool]) -> Router:
    router = Router()

    @router.task("step")
    async def step(ctx: TaskContext, payload: Any) -> dict[str, Any]:
        data = payload or {}
        if data.get("fail") and not gate.get("open"):
            raise PermanentError(f"step {ctx.step} fails until the gate opens")
        await asyncio.sleep(float(data.get("sleep", 0)))
        return {"step": ctx.step}

    return router


async def test_a_failed_step_fails_fast_then_a_retry_generation_runs_it_again(
    op: None,
    workers: Callable[..., None],
    k8s_api: client.ApiClient,
    k8s_namespace: str,
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    gate: dict[str, bool] = {}
    workers(gated_router(gate))
    steps: list[dict[str, Any]] = [
        {"name": "a", "handler": "step"},
        {"name": "b", "handler": "step", "payload": {"fail": True}, "dependsOn": ["a"]},
        {"name": "c", "handler": "step", "dependsOn": ["b"]},
        {"name": "d", "handler": "step", "dependsOn": ["c"]},
    ]
    objects.create(PLURAL, dagrun("breaks", "work", steps, failurePolicy="fail_fast"))
    await await_(phase_is(objects, "breaks", "Failed"), TIMEOUT, "run failed")
    st = status(objects, "breaks")
    assert st["failedSteps"] == ["b"]
    assert st["skippedSteps"] == ["c", "d"]
    phases = {s["name"]: s["phase"] for s in st["steps"]}
    assert phases == {"a": "Succeeded", "b": "Failed", "c": "Skipped", "d": "Skipped"}
    assert "fails until the gate opens" in next(s for s in st["steps"] if s["name"] == "b")["error"]
    assert st["progress"] == "4/4" and st["counts"]["failed"] == 1
    await await_(
        lambda: any(t == "Warning" and r == "Failed" for t, r, _ in events(objects, "breaks")),
        TIMEOUT,
        "a Failed warning",
    )

    gate["open"] = True
    objects.patch(PLURAL, "breaks", {"spec": {"retryGeneration": 1}})
    await await_(phase_is(objects, "breaks", "Succeeded"), TIMEOUT, "retried run succeeded")
    st = status(objects, "breaks")
    assert st["observedRetryGeneration"] == 1
    attempts = {s["name"]: s["attempts"] for s in st["steps"]}
    assert attempts == {"a": 1, "b": 2, "c": 1, "d": 1}  # a kept its result
    assert st["failedSteps"] == [] and st["skippedSteps"] == []
    # One event per transition: one failure, one success.
    await await_(
        lambda: any(r == "Succeeded" for _, r, _ in events(objects, "breaks")),
        TIMEOUT,
        "a Succeeded event",
    )
    reasons = [r for _, r, _ in events(objects, "breaks")]
    assert reasons.count("Failed") == 1 and reasons.count("Succeeded") == 1


async def test_an_invalid_spec_is_reported_and_nothing_is_submitted(
    op: None, engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    cycle: list[dict[str, Any]] = [
        {"name": "a", "handler": "step", "dependsOn": ["c"]},
        {"name": "b", "handler": "step", "dependsOn": ["a"]},
        {"name": "c", "handler": "step", "dependsOn": ["b"]},
    ]
    objects.create(PLURAL, dagrun("loop", "work", cycle))
    unknown: list[dict[str, Any]] = [
        {"name": "a", "handler": "step"},
        {"name": "b", "handler": "s", "dependsOn": ["x"]},
    ]
    objects.create(PLURAL, dagrun("typo", "work", unknown))
    for name in ("loop", "typo"):
        await await_(phase_is(objects, name, "Failed"), TIMEOUT, f"{name} refused")
    loop = objects.condition(PLURAL, "loop", "Submitted")
    assert loop is not None and (loop["status"], loop["reason"]) == ("False", "InvalidSpec")
    assert loop["message"].startswith("spec.steps: the steps form a cycle: ")
    assert "a -> c -> b -> a" in loop["message"]
    typo = objects.condition(PLURAL, "typo", "Submitted")
    assert typo is not None
    assert typo["message"] == "spec.steps[1].dependsOn[0]: unknown step 'x'"
    assert "runId" not in status(objects, "loop")
    await await_(
        lambda: [r for t, r, _ in events(objects, "typo") if t == "Warning"] == ["InvalidSpec"],
        TIMEOUT,
        "one InvalidSpec warning",
    )
    runs, _, _ = await DagService(engine).list(
        namespace=k8s_namespace, states=[], page_size=10, page_token=None
    )
    # Created cancelled: never submitted.
    objects.create(PLURAL, dagrun("never", "work", DIAMOND, cancel=True))
    await await_(phase_is(objects, "never", "Cancelled"), TIMEOUT, "never cancelled")
    assert "runId" not in status(objects, "never")
    # A refused DagRun's ttlSecondsAfterFinished deletes it like any ended one.
    objects.patch(PLURAL, "never", {"spec": {"ttlSecondsAfterFinished": 0}})
    await await_(lambda: objects.get(PLURAL, "never") is None, TIMEOUT, "ttl deletion")
    runs, _, _ = await DagService(engine).list(
        namespace=k8s_namespace, states=[], page_size=10, page_token=None
    )
    assert runs == []

    # What a schema can say is refused at apply time: duplicate step names, a bad policy.
    twice: list[dict[str, Any]] = [{"name": "a", "handler": "h"}, {"name": "a", "handler": "h"}]
    with pytest.raises(ApiException) as dup:
        objects.create(PLURAL, dagrun("twice", "work", twice))
    assert dup.value.status == 422 and "spec.steps[1]" in str(dup.value.body)
    with pytest.raises(ApiException) as policy:
        objects.create(PLURAL, dagrun("pol", "work", DIAMOND, failurePolicy="sometimes"))
    assert policy.value.status == 422 and "spec.failurePolicy" in str(policy.value.body)
    # The steps of a submitted run are immutable.
    with pytest.raises(ApiException) as edit:
        objects.patch(PLURAL, "typo", {"spec": {"queue": "other"}})
    assert edit.value.status == 422 and "immutable" in str(edit.value.body)


async def test_cancel_delete_and_restart_never_submit_twice(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(k8s_kubeconfig, k8s_namespace)
    dags = DagService(engine)
    op = await start_operator(config)  # no worker claims queue "idle": runs stay running
    try:
        for name in ("kept", "deleted", "cancelled"):
            objects.create(PLURAL, dagrun(name, "idle", DIAMOND))
        for name in ("kept", "deleted", "cancelled"):
            await await_(phase_is(objects, name, "Running"), TIMEOUT, f"{name} running")
        ids = {n: status(objects, n)["runId"] for n in ("kept", "deleted", "cancelled")}
        assert {s["phase"] for s in status(objects, "kept")["steps"]} == {"Queued", "Waiting"}

        objects.delete(PLURAL, "deleted")
        await await_(lambda: objects.get(PLURAL, "deleted") is None, TIMEOUT, "deleted")
        assert (await dags.get(ids["deleted"])).state == "cancelled"

        objects.patch(PLURAL, "cancelled", {"spec": {"cancel": True}})
        await await_(phase_is(objects, "cancelled", "Cancelled"), TIMEOUT, "cancelled")
        st = status(objects, "cancelled")
        assert st["counts"]["skipped"] == 4 and st["completionTime"]
        assert (await dags.get(ids["cancelled"])).state == "cancelled"

        # ttlSecondsAfterFinished deletes the ended DagRun.
        objects.patch(PLURAL, "cancelled", {"spec": {"ttlSecondsAfterFinished": 0}})
        await await_(lambda: objects.get(PLURAL, "cancelled") is None, TIMEOUT, "ttl deletion")
    finally:
        await asyncio.to_thread(op.stop)

    # Lose everything the operator wrote about "kept", as if it died between the submission
    # and the status write; a new operator submits again and gets the same run back.
    body = objects.get(PLURAL, "kept") or {}
    marks = {
        k: None for k in body["metadata"].get("annotations", {}) if k.startswith("taskflow.dev/")
    }
    objects.patch(PLURAL, "kept", {"metadata": {"annotations": marks}})
    objects.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, k8s_namespace, PLURAL, "kept", {"status": None}
    )
    assert status(objects, "kept") == {}
    op = await start_operator(config)
    try:
        await await_(phase_is(objects, "kept", "Running"), TIMEOUT, "kept re-examined")
        assert status(objects, "kept")["runId"] == ids["kept"]
    finally:
        await asyncio.to_thread(op.stop)
    runs, _, _ = await dags.list(namespace=k8s_namespace, states=[], page_size=10, page_token=None)
    assert sorted(r.state for r in runs) == ["cancelled", "cancelled", "running"]


async def test_one_query_follows_every_dagrun(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(k8s_kubeconfig, k8s_namespace)
    op = await start_operator(config)
    try:
        for i in range(5):
            objects.create(PLURAL, dagrun(f"r{i}", "idle", DIAMOND))
        for i in range(5):
            await await_(phase_is(objects, f"r{i}", "Running"), TIMEOUT, f"r{i} running")
    finally:
        await asyncio.to_thread(op.stop)

    kube = Kube(load_configuration(k8s_kubeconfig))
    ctx = OperatorContext(config=config, engine=engine, kube=kube, metrics=OperatorMetrics())
    ctx.leadership.hold()
    follower = DagRunFollower(ctx)
    calls: list[list[str]] = []
    progress = follower.store.progress

    async def counted(run_ids: Any) -> Any:
        calls.append(list(run_ids))
        return await progress(run_ids)

    follower.store.progress = counted  # type: ignore[method-assign]
    for name in ("get", "get_many", "step_counts"):
        setattr(follower.store, name, _forbidden(name))
    try:
        result = await follower.pass_once()
    finally:
        kube.close()
    assert len(calls) == 1 and len(calls[0]) == 5
    assert result.followed == 5 and result.written == 0  # nothing changed: nothing written


def _forbidden(name: str) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"DagStore.{name} called while following")

    return call


@pytest.fixture
def logged() -> Iterator[Records]:
    """The operator's log records (it runs in this process)."""
    handler = Records()
    names = ("kopf", "taskflow")
    levels = {n: logging.getLogger(n).level for n in names}
    for name in names:
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    yield handler
    for name in names:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(levels[name])


def test_chart_rbac_is_enough_for_dagruns_and_queue_schedules(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    tmp_path: Path,
    logged: Records,
) -> None:
    """With only the Role the chart grants in a watched namespace: a DagRun is submitted, its
    status and Events written, its deletion cancels it; a queue's schedules are synced."""
    ns = k8s_namespace
    docs = rendered(ns, "--set", f"operator.watchNamespaces[0]={ns}")
    wanted = [
        d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "KopfPeering")
    ]
    apply_docs(k8s_kubeconfig, ns, wanted)
    kubeconfig = account_kubeconfig(
        k8s_api, k8s_kubeconfig, ns, "taskflow-operator", tmp_path / "sa"
    )
    objects = Objects(k8s_api, ns)
    config = operator_config(kubeconfig, ns, standalone=False, peering_name="taskflow")
    every = {"name": "nightly", "cron": "0 3 * * *", "task": {"handler": "noop"}}
    with operator(config):
        objects.create("taskqueues", taskqueue("idle", schedules=[every]))
        objects.create(PLURAL, dagrun("granted", "idle", DIAMOND))
        eventually(lambda: status(objects, "granted").get("runId"), TIMEOUT, "submitted")
        eventually(
            lambda: all(
                e.get("synced")
                for e in ((objects.get("taskqueues", "idle") or {}).get("status") or {}).get(
                    "schedules"
                )
                or [{}]
            ),
            TIMEOUT,
            "schedules synced",
        )
        objects.patch(PLURAL, "granted", {"spec": {"cancel": True}})
        eventually(phase_is(objects, "granted", "Cancelled"), TIMEOUT, "cancelled")
        eventually(
            lambda: any(r == "Cancelled" for _, r, _ in events(objects, "granted")),
            TIMEOUT,
            "an Event posted by the follower",
        )
        objects.delete(PLURAL, "granted")
        eventually(lambda: objects.get(PLURAL, "granted") is None, TIMEOUT, "finalizer removed")
    assert logged.refusals() == 0
    assert logged.tracebacks() == []
