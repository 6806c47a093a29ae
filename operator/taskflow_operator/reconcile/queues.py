"""One TaskQueue pass: Deployment in step, rate limit set, backlog read, replicas decided,
status written when it changed. Run at create/update/resume and by the queue's daemon."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from taskflow.errors import Unavailable
from taskflow.keys import QueueRef
from taskflow.models import QueueStats
from taskflow_operator import autoscaler
from taskflow_operator.autoscaler import Bounds, Decision, History
from taskflow_operator.builders.common import DELETION_COST, Owner, selector, workers_name
from taskflow_operator.conditions import FALSE, TRUE, now_rfc3339, same_conditions, set_condition
from taskflow_operator.context import OperatorContext, queue_lock
from taskflow_operator.crd.taskqueue import AutoscalingEngine, TaskQueueSpec
from taskflow_operator.reconcile.podcost import annotations_to_write, http_probe, measure
from taskflow_operator.reconcile.workers import WorkersState, apply_queue_settings, ensure_workers

log = logging.getLogger("taskflow.operator.queues")
PLURAL = "taskqueues"


def parse_spec(body: Any) -> TaskQueueSpec:
    try:
        return TaskQueueSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise kopf.PermanentError(f"invalid TaskQueue spec: {exc}") from None


def bounds(spec: TaskQueueSpec) -> Bounds:
    a = spec.autoscaling
    return Bounds(
        spec.replicas.min,
        spec.replicas.max,
        spec.target_per_pod,
        a.scale_down_stabilization_seconds,
    )


@dataclass(frozen=True)
class PassResult:
    workers: WorkersState
    stats: QueueStats | None
    engine_error: str | None
    decision: Decision | None
    replicas: int


async def reconcile_queue(ctx: OperatorContext, body: Any, *, scale: bool) -> PassResult:
    """Everything one pass does; ``scale=False`` for the event handlers (the daemon scales)."""
    meta = body["metadata"]
    async with queue_lock(ctx, meta["namespace"], meta["name"]):
        return await _pass(ctx, body, scale=scale)


async def _pass(ctx: OperatorContext, body: Any, *, scale: bool) -> PassResult:
    owner = Owner.of(body)
    spec = parse_spec(body)
    workers = await ensure_workers(ctx, owner, spec)
    if workers.created:
        kopf.info(body, reason="Created", message=f"deployment {workers_name(owner.name)}")
    elif workers.repaired:
        kopf.warn(body, reason="DriftRepaired", message=", ".join(workers.repaired)[:1000])
    ref = QueueRef(owner.namespace, owner.name)
    stats: QueueStats | None = None
    engine_error: str | None = None
    try:
        await apply_queue_settings(ctx, owner, spec)
        stats = await ctx.engine.queue_stats(ref)
    except (Unavailable, OSError) as exc:
        engine_error = str(exc)
    replicas = workers.replicas
    decision = None
    if stats is not None:
        ctx.metrics.backlog.labels(owner.namespace, owner.name).set(stats.backlog)
        if scale and spec.autoscaling.engine is AutoscalingEngine.BUILTIN:
            decision = await _autoscale(ctx, owner, spec, stats, workers.replicas, body)
            replicas = decision.desired
            ctx.metrics.desired.labels(owner.namespace, owner.name).set(decision.desired)
    result = PassResult(workers, stats, engine_error, decision, replicas)
    await _write_status(ctx, owner, body, result)
    return result


async def _autoscale(
    ctx: OperatorContext,
    owner: Owner,
    spec: TaskQueueSpec,
    stats: QueueStats,
    current: int,
    body: Any,
) -> Decision:
    key = (owner.namespace, owner.name)
    now = time.monotonic()
    history = ctx.histories.get(key) or History(last_scale_time=now)
    b = bounds(spec)
    decision = autoscaler.decide(
        backlog=stats.backlog, current=current, busy_pods=0, bounds=b, history=history, now=now
    )
    if decision.desired < current:
        busy = await _set_deletion_costs(ctx, owner)
        decision = autoscaler.decide(
            backlog=stats.backlog,
            current=current,
            busy_pods=busy,
            bounds=b,
            history=history,
            now=now,
        )
    ctx.histories[key] = decision.history
    ctx.metrics.decided(owner.namespace, owner.name, decision)
    if decision.desired != current:
        await ctx.kube.scale_deployment(owner.namespace, workers_name(owner.name), decision.desired)
        direction = "up" if decision.desired > current else "down"
        ctx.metrics.scalings.labels(direction).inc()
        message = (
            f"{current} -> {decision.desired} replicas (backlog {stats.backlog}, "
            f"{spec.target_per_pod} per pod)"
        )
        log.info(
            "scaled %s: %s",
            owner.qualified,
            message,
            extra={"queue": owner.qualified, "from": current, "to": decision.desired},
        )
        kopf.info(body, reason=f"Scaled{direction.capitalize()}", message=message)
    return decision


async def _set_deletion_costs(ctx: OperatorContext, owner: Owner) -> int:
    """Annotate pods with their in-flight count; return how many are busy."""
    pods = await ctx.kube.list_pods(owner.namespace, selector(owner.name))
    loads = await measure(pods, http_probe(ctx.config.pod_probe_timeout))
    unreachable = [p.name for p in loads if p.in_flight is None]
    if unreachable:
        log.info(
            "%s: worker health not reachable on %d pod(s); their deletion cost is 0",
            owner.qualified,
            len(unreachable),
            extra={"queue": owner.qualified, "pods": unreachable[:20]},
        )
    for name, cost in annotations_to_write(pods, loads).items():
        await ctx.kube.annotate_pod(owner.namespace, name, {DELETION_COST: cost})
    return sum(1 for p in loads if p.in_flight)


def queue_status(body: Any, result: PassResult) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    conds: list[dict[str, Any]] = list(status.get("conditions") or [])
    gen = body["metadata"].get("generation")
    w = result.workers
    wanted = result.replicas
    if result.engine_error:
        conds = set_condition(
            conds, "Degraded", TRUE, "EngineUnavailable", result.engine_error[:500], generation=gen
        )
    elif w.failure:
        conds = set_condition(
            conds, "Degraded", TRUE, "DeploymentFailing", w.failure[:500], generation=gen
        )
    else:
        conds = set_condition(conds, "Degraded", FALSE, "AsExpected", generation=gen)
    if wanted == 0:
        conds = set_condition(
            conds, "Ready", TRUE, "ScaledToZero", "no backlog, no workers", generation=gen
        )
    elif w.available > 0:
        conds = set_condition(
            conds,
            "Ready",
            TRUE,
            "WorkersAvailable",
            f"{w.available}/{wanted} available",
            generation=gen,
        )
    else:
        conds = set_condition(
            conds, "Ready", FALSE, "WorkersUnavailable", f"0/{wanted} available", generation=gen
        )
    d = result.decision
    if d is not None and d.waiting:
        conds = set_condition(
            conds, "Scaling", FALSE, "Stabilizing", f"backlog wants {d.recommended}", generation=gen
        )
    elif w.ready != wanted:
        reason = "ScalingUp" if wanted > w.ready else "ScalingDown"
        conds = set_condition(
            conds, "Scaling", TRUE, reason, f"{w.ready} -> {wanted} ready", generation=gen
        )
    else:
        conds = set_condition(conds, "Scaling", FALSE, "Stable", generation=gen)
    out: dict[str, Any] = {
        "replicas": w.ready,
        "desired": wanted,
        "observedGeneration": gen,
        "conditions": conds,
    }
    if result.stats is not None:
        s = result.stats
        out |= {"backlog": s.backlog, "ready": s.ready, "running": s.running}
    if d is not None and d.desired != w.replicas:
        out["lastScaleTime"] = now_rfc3339()
    return out


async def _write_status(ctx: OperatorContext, owner: Owner, body: Any, result: PassResult) -> None:
    current = dict(body.get("status") or {})
    wanted = queue_status(body, result)
    changed = any(current.get(k) != v for k, v in wanted.items() if k != "conditions")
    if changed or not same_conditions(current.get("conditions") or [], wanted["conditions"]):
        await ctx.kube.patch_status(PLURAL, owner.namespace, owner.name, wanted)
