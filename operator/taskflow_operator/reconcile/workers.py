"""A TaskQueue's worker Deployment (and KEDA ScaledObject): create, keep in step, repair."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from taskflow.keys import QueueRef
from taskflow.models import QueueConfig, RateLimit, RetryPolicy
from taskflow_operator.builders.common import Owner, workers_name
from taskflow_operator.builders.deployment import workers_deployment
from taskflow_operator.builders.drift import drifted
from taskflow_operator.builders.keda import KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS, scaled_object
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd.taskqueue import AutoscalingEngine, TaskQueueSpec

log = logging.getLogger("taskflow.operator.workers")


@dataclass(frozen=True)
class WorkersState:
    """What the live Deployment says after reconciling."""

    created: bool
    repaired: list[str]
    replicas: int  # spec.replicas
    ready: int
    available: int
    failure: str | None  # a Deployment condition that says it cannot progress


async def ensure_workers(ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec) -> WorkersState:
    keda = spec.autoscaling.engine is AutoscalingEngine.KEDA
    live = await ctx.kube.get_deployment(owner.namespace, workers_name(owner.name))
    if live is None:
        initial = None if keda else spec.replicas.min
        await ctx.kube.create_deployment(workers_deployment(owner, spec, initial))
        replicas = 1 if initial is None else initial
        if keda:
            await _ensure_scaled_object(ctx, owner, spec)
        return WorkersState(True, [], replicas, 0, 0, None)
    wanted = workers_deployment(owner, spec, None)
    repaired = _compare(wanted, live)
    if repaired:
        wanted["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        wanted["spec"]["replicas"] = live["spec"].get("replicas", 1)
        await ctx.kube.replace_deployment(wanted)
        log.info("repaired worker deployment", extra={"queue": owner.name, "fields": repaired})
    if keda:
        await _ensure_scaled_object(ctx, owner, spec)
    status = live.get("status") or {}
    return WorkersState(
        created=False,
        repaired=repaired,
        replicas=int(live["spec"].get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        failure=_failure(status),
    )


def _compare(wanted: dict[str, Any], live: dict[str, Any]) -> list[str]:
    paths = drifted(wanted["spec"], live.get("spec"), "spec")
    paths += drifted(
        wanted["metadata"]["labels"], live["metadata"].get("labels"), "metadata.labels"
    )
    refs = live["metadata"].get("ownerReferences") or []
    if not any(r.get("uid") == wanted["metadata"]["ownerReferences"][0]["uid"] for r in refs):
        paths.append("metadata.ownerReferences")
    return paths


def _failure(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{cond.get('reason')}: {cond.get('message')}"
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"ProgressDeadlineExceeded: {cond.get('message')}"
    return None


async def _ensure_scaled_object(ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec) -> None:
    body = scaled_object(owner, spec, ctx.config.public_url)
    if await ctx.kube.apply_object(KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS, body):
        log.info("applied KEDA ScaledObject", extra={"queue": owner.name})


async def apply_queue_settings(ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec) -> None:
    """The engine applies the TaskQueue's retry defaults, task timeout and rate limit."""
    rate = spec.rate_limit
    retry = spec.retry
    await ctx.engine.configure_queue(
        QueueRef(owner.namespace, owner.name),
        QueueConfig(
            max_retries=retry.max_retries,
            retry=RetryPolicy(
                initial_seconds=retry.initial_seconds,
                multiplier=retry.multiplier,
                max_seconds=retry.max_seconds,
            ),
            timeout_seconds=spec.task_timeout_seconds,
            rate=RateLimit(rate.per_second, rate.burst) if rate else None,
        ),
    )
