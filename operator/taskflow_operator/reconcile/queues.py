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
from taskflow_operator.crd.taskqueue import Autoscaling, AutoscalingEngine, TaskQueueSpec
from taskflow_operator.reconcile.podcost import annotations_to_write, http_probe, measure
from taskflow_operator.reconcile.workers import (
    Refused,
    WorkersState,
    apply_queue_settings,
    ensure_workers,
)
from taskflow_operator.reporting import MAX_MESSAGE, Failure, Notice, QueueReport

log = logging.getLogger("taskflow.operator.queues")
PLURAL = "taskqueues"


def parse_spec(body: Any) -> TaskQueueSpec:
    """The spec, or ``Refused`` naming the first bad field (the CRD's schema checks the same
    at apply time; this catches objects stored before a stricter CRD was installed)."""
    try:
        return TaskQueueSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("spec", *err["loc"]))
        raise Refused(Failure("InvalidSpec", f"{where}: {err['msg']}")) from None


def poll_interval(body: Any) -> float:
    try:
        return parse_spec(body).autoscaling.poll_interval_seconds
    except Refused:
        return Autoscaling().poll_interval_seconds


def bounds(spec: TaskQueueSpec) -> Bounds:
    a = spec.autoscaling
    return Bounds(
        spec.replicas.min,
        spec.replicas.max,
        spec.target_per_pod,
        a.scale_down_stabilization_seconds,
    )


def report_of(ctx: OperatorContext, namespace: str, name: str) -> QueueReport:
    return ctx.reports.setdefault((namespace, name), QueueReport())


@dataclass(frozen=True)
class PassResult:
    workers: WorkersState | None  # None: the Deployment could not be brought in step
    stats: QueueStats | None
    failure: Failure | None  # what stopped the pass, or what the Deployment says is wrong
    decision: Decision | None
    replicas: int
    backoff: bool = False  # the failure stopped the pass: wait longer before the next


async def reconcile_queue(ctx: OperatorContext, body: Any, *, scale: bool) -> PassResult:
    """Everything one pass does; ``scale=False`` for the event handlers (the daemon scales).

    Never raises for what the user can fix (a refused Deployment, KEDA missing, the engine
    down): that is the ``Degraded`` condition, one Warning Event, and a backoff."""
    meta = body["metadata"]
    async with queue_lock(ctx, meta["namespace"], meta["name"]):
        report = report_of(ctx, meta["namespace"], meta["name"])
        try:
            result = await _pass(ctx, body, report, scale=scale)
        except Refused as exc:
            result = PassResult(None, None, exc.failure, None, 0, backoff=True)
        log.debug(
            "pass %s/%s: %s",
            meta["namespace"],
            meta["name"],
            result.failure.reason if result.failure else "ok",
        )
        if result.failure is None:
            _post(body, report.succeeded())
        else:
            notice = report.failed(result.failure, backoff=result.backoff)
            if notice is not None:
                log.warning("%s/%s: %s", meta["namespace"], meta["name"], notice.message)
            _post(body, notice)
        await _write_status(ctx, Owner.of(body), body, result)
        return result


def _post(body: Any, notice: Notice | None) -> None:
    if notice is None:
        return
    if notice.warning:
        kopf.warn(body, reason=notice.reason, message=notice.message)
    else:
        kopf.info(body, reason=notice.reason, message=notice.message)


async def _pass(ctx: OperatorContext, body: Any, report: QueueReport, *, scale: bool) -> PassResult:
    owner = Owner.of(body)
    spec = parse_spec(body)
    workers = await ensure_workers(ctx, owner, spec, body["metadata"].get("generation"))
    if workers.created:
        kopf.info(body, reason="Created", message=f"deployment {workers_name(owner.name)}")
    elif workers.updated:
        kopf.info(body, reason="Updated", message=_fields("spec edit rolled out", workers.updated))
    elif workers.repaired:
        kopf.warn(
            body, reason="DriftRepaired", message=_fields("hand edit undone", workers.repaired)
        )
    ref = QueueRef(owner.namespace, owner.name)
    try:
        await apply_queue_settings(ctx, owner, spec)
        stats = await ctx.engine.queue_stats(ref)
    except (Unavailable, OSError) as exc:
        down = Failure("EngineUnavailable", str(exc))
        return PassResult(workers, None, down, None, workers.replicas, backoff=True)
    replicas = workers.replicas
    decision = None
    ctx.metrics.backlog.labels(owner.namespace, owner.name).set(stats.backlog)
    if scale and spec.autoscaling.engine is AutoscalingEngine.BUILTIN:
        decision = await _autoscale(ctx, owner, spec, stats, workers.replicas, body, report)
        replicas = decision.desired
        ctx.metrics.desired.labels(owner.namespace, owner.name).set(decision.desired)
    failing = Failure("DeploymentFailing", workers.failure) if workers.failure else None
    return PassResult(workers, stats, failing, decision, replicas)


def _fields(what: str, paths: list[str]) -> str:
    return f"{what}: {', '.join(paths)}"[:MAX_MESSAGE]


async def _autoscale(
    ctx: OperatorContext,
    owner: Owner,
    spec: TaskQueueSpec,
    stats: QueueStats,
    current: int,
    body: Any,
    report: QueueReport,
) -> Decision:
    key = (owner.namespace, owner.name)
    now = time.monotonic()
    history = ctx.histories.get(key) or History.first(now, current)
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
    detail = f"backlog {stats.backlog}, {spec.target_per_pod} per pod"
    ctx.metrics.decided(owner.namespace, owner.name, decision)
    if decision.desired != current:
        await ctx.kube.scale_deployment(owner.namespace, workers_name(owner.name), decision.desired)
        direction = "up" if decision.desired > current else "down"
        ctx.metrics.scalings.labels(direction).inc()
        message = f"{current} -> {decision.desired} replicas ({detail})"
        log.info(
            "scaled %s: %s",
            owner.qualified,
            message,
            extra={"queue": owner.qualified, "from": current, "to": decision.desired},
        )
        _post(body, report.scaled(current, decision.desired, now, detail))
    else:
        _post(body, report.flush(now, detail))
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
    if result.failure is not None:
        f = result.failure
        conds = set_condition(conds, "Degraded", TRUE, f.reason, f.text, generation=gen)
    else:
        conds = set_condition(conds, "Degraded", FALSE, "AsExpected", generation=gen)
    if w is None:
        # Nothing known of the workers this pass: say why, keep the last counts.
        message = "the worker Deployment could not be brought in step (see Degraded)"
        conds = set_condition(conds, "Ready", FALSE, "Degraded", message, generation=gen)
        conds = set_condition(conds, "Scaling", FALSE, "Blocked", message, generation=gen)
        return {"observedGeneration": gen, "conditions": conds}
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
