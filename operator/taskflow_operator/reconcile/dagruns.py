"""``DagRun`` resources: submitted once (idempotent on the object's UID), mirrored from the
engine in batches, cancelled and retried on request, cancelled when deleted.

One ``DagRunFollower`` pass reads every followed run with ONE query
(``DagStore.progress``: ``run_id = ANY(...)``), whatever the number of DagRuns, and writes a
status only where what ``kubectl get`` shows changed; an Event marks each run's end.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from taskflow.errors import (
    STORE_ERRORS,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    unavailable,
)
from taskflow.store.dags import DagStore, RunProgress
from taskflow.waiting import first_of
from taskflow.workflows.models import validate_dag
from taskflow.workflows.service import DagService
from taskflow_operator.conditions import FALSE, TRUE, now_rfc3339, set_condition
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd.dagrun import (
    DAGRUN,
    FINISHED_RUN_PHASES,
    DagRunPhase,
    DagRunSpec,
    DagStep,
    StepPhase,
)
from taskflow_operator.events import NORMAL, WARNING, post_event
from taskflow_operator.taskstatus import rfc3339, status_changed

log = logging.getLogger("taskflow.operator.dagruns")
PLURAL = DAGRUN.plural
INVALID = "InvalidSpec"
SUBMITTED = "Submitted"
FINISHED = "Finished"
#: What makes a call worth retrying later: the engine's stores cannot be reached.
ENGINE_DOWN: tuple[type[BaseException], ...] = (Unavailable, *STORE_ERRORS)
#: Steps named in an Event's message before "and N more".
EVENT_STEPS = 10

RUN_PHASES = {
    "running": DagRunPhase.RUNNING,
    "succeeded": DagRunPhase.SUCCEEDED,
    "failed": DagRunPhase.FAILED,
    "cancelled": DagRunPhase.CANCELLED,
}
STEP_PHASES = {
    "waiting": StepPhase.WAITING,
    "scheduled": StepPhase.SCHEDULED,
    "queued": StepPhase.QUEUED,
    "running": StepPhase.RUNNING,
    "retrying": StepPhase.RETRYING,
    "succeeded": StepPhase.SUCCEEDED,
    "failed": StepPhase.FAILED,
    "cancelled": StepPhase.CANCELLED,
    "skipped": StepPhase.SKIPPED,
}
#: Which count each step state adds to (``done`` is every ended step).
COUNTED = {
    "waiting": "waiting",
    "scheduled": "queued",
    "queued": "queued",
    "running": "running",
    "retrying": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "skipped": "skipped",
}
COUNTS = (
    "total",
    "done",
    "waiting",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "skipped",
)
ENDED_STEPS = frozenset({"succeeded", "failed", "cancelled", "skipped"})


def idempotency_key(uid: str) -> str:
    return f"k8s-dagrun-{uid}"


def is_finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in {p.value for p in FINISHED_RUN_PHASES}


# -- submission -------------------------------------------------------------------------------


def step_fields(s: DagStep) -> dict[str, Any]:
    """One step as ``validate_dag`` takes it (the engine's snake_case names)."""
    step: dict[str, Any] = {
        "name": s.name,
        "handler": s.handler,
        "payload": s.payload,
        "priority": s.priority,
        "depends_on": list(s.depends_on),
    }
    if s.queue:
        step["queue"] = s.queue
    if s.max_retries is not None:
        step["max_retries"] = s.max_retries
    if s.timeout_seconds is not None:
        step["timeout_seconds"] = s.timeout_seconds
    return step


def dag_fields(namespace: str, uid: str, name: str, spec: DagRunSpec) -> dict[str, Any]:
    """The run as ``validate_dag`` takes it (the engine's snake_case names)."""
    steps = [step_fields(s) for s in spec.steps]
    return {
        "namespace": namespace,
        "queue": spec.queue,
        "name": name,
        "failure_policy": spec.failure_policy.value,
        "idempotency_key": idempotency_key(uid),
        "labels": {"k8s.dagrun": name},
        "steps": steps,
    }


_SNAKE = re.compile(r"_([a-z])")


def spec_field(engine_field: str) -> str:
    """``spec.steps[2].depends_on[0]`` → ``spec.steps[2].dependsOn[0]``: the engine's field
    names as the DagRun spells them."""
    text = engine_field.replace("payload_json", "payload")
    return _SNAKE.sub(lambda m: m.group(1).upper(), text)


def _pydantic_field(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    parts: list[str] = []
    for p in err["loc"]:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return spec_field(".".join(["spec", *parts])), str(err["msg"])


async def submit_dagrun(ctx: OperatorContext, body: Any) -> dict[str, Any] | None:
    """Submit when not yet submitted; return the status to write (None: nothing to do)."""
    status = dict(body.get("status") or {})
    if status.get("runId") or is_finished(status):
        return None
    meta = body["metadata"]
    ns, uid, name = meta["namespace"], meta["uid"], meta["name"]
    try:
        spec = DagRunSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        return _reject(ctx, body, *_pydantic_field(exc))
    if spec.cancel:
        return cancelled_unsubmitted(status.get("conditions") or [])
    service = DagService(ctx.engine)
    try:
        dag = validate_dag(dag_fields(ns, uid, name, spec), path="spec")
        run_id, created = await service.submit(dag, field="spec")
        with unavailable("PostgreSQL"):
            runs = await service.store.progress([run_id])
    except InvalidArgument as exc:
        return _reject(ctx, body, spec_field(exc.field), exc.problem)
    except PayloadTooLarge as exc:
        return _reject(ctx, body, spec_field(exc.field), str(exc).partition(": ")[2])
    except ENGINE_DOWN as exc:
        ctx.metrics.errors.labels(DAGRUN.kind).inc()
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    kopf.info(
        body,
        reason="Submitted",
        message=f"run {run_id}: {len(spec.steps)} steps, default queue {spec.queue}"
        + ("" if created else " (the run submitted before, found by this object's UID)"),
    )
    if not runs:  # deleted by retention in between: the follower reports it
        return {"phase": DagRunPhase.RUNNING.value, "runId": run_id}
    return mirrored_status(runs[0], status)


def _reject(ctx: OperatorContext, body: Any, where: str, problem: str) -> dict[str, Any]:
    message = f"{where}: {problem}"
    kopf.warn(body, reason=INVALID, message=message)
    return rejected_status(INVALID, message, (body.get("status") or {}).get("conditions") or [])


def rejected_status(
    reason: str, message: str, conditions: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A DagRun that never reached the engine: nothing was submitted."""
    conds = set_condition(conditions, SUBMITTED, FALSE, reason, message)
    conds = set_condition(conds, FINISHED, TRUE, reason, message)
    return {
        "phase": DagRunPhase.FAILED.value,
        "completionTime": now_rfc3339(),
        "conditions": conds,
    }


def cancelled_unsubmitted(conditions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """A DagRun created with ``cancel: true``: it is not submitted at all."""
    message = "spec.cancel was true before the run was submitted"
    conds = set_condition(conditions, SUBMITTED, FALSE, "Cancelled", message)
    conds = set_condition(conds, FINISHED, TRUE, "Cancelled", message)
    return {
        "phase": DagRunPhase.CANCELLED.value,
        "completionTime": now_rfc3339(),
        "conditions": conds,
    }


# -- the engine's run as a status -------------------------------------------------------------


def mirrored_status(run: RunProgress, current: dict[str, Any]) -> dict[str, Any]:
    """The status fields that follow the engine (compare before writing: one write per
    change). ``observedRetryGeneration`` is the caller's."""
    phase = RUN_PHASES[run.state]
    counts = dict.fromkeys(COUNTS, 0)
    steps: list[dict[str, Any]] = []
    for s in run.steps:
        counts["total"] += 1
        counts[COUNTED[s.state]] += 1
        if s.state in ENDED_STEPS:
            counts["done"] += 1
        step: dict[str, Any] = {
            "name": s.name,
            "phase": STEP_PHASES[s.state].value,
            "taskId": s.task_id,
            "attempts": s.attempts,
        }
        if s.started_at:
            step["startTime"] = rfc3339(s.started_at)
        if s.finished_at and s.state in ENDED_STEPS:
            step["completionTime"] = rfc3339(s.finished_at)
        if s.error and s.state in ("failed", "retrying", "cancelled"):
            step["error"] = s.error
        steps.append(step)
    failed = [s.name for s in run.steps if s.state == "failed"]
    skipped = [s.name for s in run.steps if s.state == "skipped"]
    conds = set_condition(
        current.get("conditions") or [], SUBMITTED, TRUE, "Accepted", f"run {run.id}"
    )
    if phase in FINISHED_RUN_PHASES:
        conds = set_condition(conds, FINISHED, TRUE, phase.value, _ended(phase, counts, failed))
    else:
        conds = set_condition(conds, FINISHED, FALSE, phase.value)
    return {
        "phase": phase.value,
        "runId": run.id,
        "progress": f"{counts['done']}/{counts['total']}",
        "counts": counts,
        "steps": steps,
        "failedSteps": failed,
        "skippedSteps": skipped,
        "startTime": rfc3339(run.created_at),
        "completionTime": rfc3339(run.finished_at) if phase in FINISHED_RUN_PHASES else None,
        "conditions": conds,
    }


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:EVENT_STEPS])
    more = len(names) - EVENT_STEPS
    return f"{shown} and {more} more" if more > 0 else shown


def _ended(phase: DagRunPhase, counts: dict[str, int], failed: Sequence[str]) -> str:
    if phase is DagRunPhase.SUCCEEDED:
        return f"all {counts['total']} steps succeeded"
    parts = []
    if failed:
        parts.append(f"failed: {_names(failed)}")
    if counts["cancelled"]:
        parts.append(f"{counts['cancelled']} cancelled")
    if counts["skipped"]:
        parts.append(f"{counts['skipped']} skipped")
    text = "; ".join(parts)
    return text if phase is DagRunPhase.FAILED else f"cancelled ({text})" if text else "cancelled"


def transition_event(before: str | None, after: dict[str, Any]) -> tuple[str, str, str] | None:
    """The one Event of a run's end (type, reason, message): Warning when it failed."""
    phase = after.get("phase")
    if phase == before or phase not in {p.value for p in FINISHED_RUN_PHASES}:
        return None
    message = next(
        (c["message"] for c in after.get("conditions") or [] if c.get("type") == FINISHED), ""
    )
    skipped = after.get("skippedSteps") or []
    if phase == DagRunPhase.FAILED.value:
        text = message + (f" (skipped: {_names(skipped)})" if skipped else "")
        return WARNING, "Failed", text
    return NORMAL, str(phase), message


# -- deletion ---------------------------------------------------------------------------------


async def cancel_dagrun(ctx: OperatorContext, body: Any) -> None:
    """A deleted DagRun's run is cancelled when it has not ended."""
    status = dict(body.get("status") or {})
    run_id = status.get("runId")
    if not run_id or is_finished(status):
        return
    try:
        run = await DagService(ctx.engine).cancel(run_id)
    except NotFound:
        return
    except ENGINE_DOWN as exc:
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    log.info("cancelled with its DagRun", extra={"run": run_id, "state": run.state})


# -- following --------------------------------------------------------------------------------


def expired(body: Any, now: datetime) -> bool:
    """Finished for longer than ``ttlSecondsAfterFinished``."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    status = body.get("status") or {}
    if ttl is None or not is_finished(status):
        return False
    done = status.get("completionTime")
    if not done:
        return True
    finished = datetime.strptime(done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return now >= finished + timedelta(seconds=int(ttl))


def _retry_wanted(body: Any) -> int | None:
    """The retry generation to apply now, if one is pending and the run may be retried."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    wanted = int(spec.get("retryGeneration") or 0)
    if spec.get("cancel") or wanted <= int(status.get("observedRetryGeneration") or 0):
        return None
    return wanted if is_finished(status) else None


@dataclass
class PassResult:
    followed: int = 0
    written: int = 0
    deleted: int = 0
    queries: int = 0


@dataclass
class DagRunFollower:
    """Follows every submitted, unfinished DagRun; one ``pass_once`` per poll interval."""

    ctx: OperatorContext
    service: DagService = field(init=False)
    store: DagStore = field(init=False)
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.service = DagService(self.ctx.engine)
        self.store = self.service.store

    def wake(self) -> None:
        """Look now rather than at the next interval (a cancel or a retry was asked for)."""
        self.woken.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Every ``task_poll_seconds`` (or when woken) while this operator leads."""
        while not stop.is_set():
            self.woken.clear()
            if self.ctx.leadership.active:
                try:
                    await self.pass_once()
                except Exception:
                    self.ctx.metrics.errors.labels(DAGRUN.kind).inc()
                    log.exception("following DagRuns failed; retrying")
            await first_of(stop, self.woken, timeout=self.ctx.config.task_poll_seconds)

    async def _bodies(self) -> list[dict[str, Any]]:
        namespaces: list[str | None] = list(self.ctx.config.namespaces) or [None]
        out: list[dict[str, Any]] = []
        for namespace in namespaces:
            out.extend(await self.ctx.kube.list_objects(PLURAL, namespace))
        return out

    async def pass_once(self) -> PassResult:
        result = PassResult()
        now = datetime.now(UTC)
        followed: list[dict[str, Any]] = []
        retries: dict[str, int] = {}
        for body in await self._bodies():
            meta = body.get("metadata") or {}
            status = body.get("status") or {}
            if meta.get("deletionTimestamp"):
                continue
            if expired(body, now):  # refused or cancelled before submission included
                await self.ctx.kube.delete_object(PLURAL, meta["namespace"], meta["name"])
                log.info("deleted finished DagRun", extra={"dagrun": _key(body)})
                result.deleted += 1
                continue
            if not status.get("runId"):  # not submitted yet, or never will be
                continue
            retry = _retry_wanted(body)
            if retry is not None:
                retries[status["runId"]] = retry
                await self._retry(body, retry)
                followed.append(body)
            elif not is_finished(status):
                if (body.get("spec") or {}).get("cancel"):
                    await self._cancel(body)
                followed.append(body)
        result.followed = len(followed)
        if not followed:
            return result
        with unavailable("PostgreSQL"):
            runs = {r.id: r for r in await self.store.progress([_run_id(b) for b in followed])}
        result.queries = 1
        for body in followed:
            status = dict(body.get("status") or {})
            run = runs.get(_run_id(body))
            wanted = _gone(status) if run is None else mirrored_status(run, status)
            if _run_id(body) in retries:
                wanted["observedRetryGeneration"] = retries[_run_id(body)]
            if not status_changed(status, wanted):
                continue
            meta = body["metadata"]
            try:
                await self.ctx.kube.patch_status(PLURAL, meta["namespace"], meta["name"], wanted)
            except ApiException as exc:
                if exc.status == 404:  # deleted since it was listed
                    continue
                raise
            result.written += 1
            event = transition_event(status.get("phase"), wanted)
            if event is not None:
                await post_event(self.ctx.kube, body, *event)
        return result

    async def _cancel(self, body: Any) -> None:
        run_id = _run_id(body)
        try:
            await self.service.cancel(run_id)
        except NotFound:
            return
        await post_event(
            self.ctx.kube, body, NORMAL, "Cancelling", f"run {run_id}: spec.cancel is true"
        )

    async def _retry(self, body: Any, generation: int) -> None:
        run_id = _run_id(body)
        try:
            await self.service.retry(run_id)
        except InvalidArgument as exc:  # it succeeded: nothing to retry
            await post_event(self.ctx.kube, body, WARNING, "RetryRefused", exc.problem)
            return
        except NotFound:
            return
        await post_event(
            self.ctx.kube,
            body,
            NORMAL,
            "Retrying",
            f"run {run_id} again from its steps that did not succeed "
            f"(retryGeneration {generation})",
        )


def _run_id(body: Any) -> str:
    return str(body["status"]["runId"])


def _key(body: Any) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _gone(status: dict[str, Any]) -> dict[str, Any]:
    message = f"run {status.get('runId')} is gone from the engine"
    conds = set_condition(status.get("conditions") or [], FINISHED, TRUE, "RunNotFound", message)
    return {
        "phase": DagRunPhase.FAILED.value,
        "completionTime": status.get("completionTime") or now_rfc3339(),
        "conditions": conds,
    }
