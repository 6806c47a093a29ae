"""Records as the JSON the dashboard's pages read. Large fields are cut to ``FIELD_LIMIT``
characters and say so (``payload_truncated``...), so no response grows with what tasks carry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflow.models import QueueStats, TaskRecord, WorkerStatus
from taskflow.scheduling.models import ScheduleRecord
from taskflow.store.dags import DagRunRecord, StepRecord

#: Characters of a payload, result, error or traceback a task's page shows.
FIELD_LIMIT = 64 * 1024
#: Characters of a step's error on a run's page.
STEP_ERROR_LIMIT = 500
#: Steps of a run its page lists (a run may have 10,000; the rest are counted, not listed).
STEP_LIMIT = 2000


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def cut(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit], True


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def queue_view(s: QueueStats) -> dict[str, Any]:
    return {
        "namespace": s.namespace,
        "queue": s.queue,
        "ready": s.ready,
        "scheduled": s.scheduled,
        "due_delayed": s.due_delayed,
        "running": s.running,
        "backlog": s.backlog,
        "succeeded": s.succeeded,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "dead_letters": s.dead_letters,
    }


def task_row_view(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        out[key] = iso(out.get(key))
    if out.get("skipped"):
        out["state"] = "skipped"
    out.pop("skipped", None)
    return out


def task_view(t: TaskRecord) -> dict[str, Any]:
    payload, payload_cut = cut(t.payload_json, FIELD_LIMIT)
    result, result_cut = cut(t.result_json, FIELD_LIMIT)
    error, error_cut = cut(t.error, FIELD_LIMIT)
    trace, trace_cut = cut(t.traceback, FIELD_LIMIT)
    attempts = []
    for a in t.attempt_history:
        a_error, a_cut = cut(a.error, FIELD_LIMIT)
        attempts.append(
            {
                "number": a.number,
                "worker": a.worker,
                "outcome": a.outcome,
                "started_at": iso(a.started_at),
                "finished_at": iso(a.finished_at),
                "seconds": _seconds(a.started_at, a.finished_at),
                "error": a_error,
                "error_truncated": a_cut,
            }
        )
    return {
        "id": t.id,
        "namespace": t.namespace,
        "queue": t.queue,
        "handler": t.handler,
        "state": "skipped" if t.skipped else t.state.value,
        "priority": t.priority,
        "attempts": t.attempts,
        "failures": t.failures,
        "max_retries": t.max_retries,
        "timeout_seconds": t.timeout_seconds,
        "idempotency_key": t.idempotency_key,
        "concurrency_key": t.concurrency_key,
        "labels": t.labels,
        "created_at": iso(t.created_at),
        "run_at": iso(t.run_at),
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "updated_at": iso(t.updated_at),
        "wait_seconds": _seconds(t.created_at, t.started_at),
        "run_seconds": _seconds(t.started_at, t.finished_at),
        "progress": t.progress,
        "progress_message": t.progress_message,
        "payload_json": payload,
        "payload_truncated": payload_cut,
        "result_json": result,
        "result_truncated": result_cut,
        "error": error,
        "error_truncated": error_cut,
        "traceback": trace,
        "traceback_truncated": trace_cut,
        "run_id": t.run_id,
        "step": t.step,
        "attempt_history": attempts,
    }


def run_summary_view(run: DagRunRecord, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": run.id,
        "namespace": run.namespace,
        "name": run.name,
        "queue": run.queue,
        "failure_policy": run.failure_policy,
        "state": run.state,
        "labels": run.labels,
        "steps_total": run.steps_total,
        "step_counts": counts if counts is not None else run.counts(),
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at),
    }


def _step_view(step: StepRecord) -> dict[str, Any]:
    t = step.task
    error, error_cut = cut(t.error, STEP_ERROR_LIMIT)
    return {
        "name": step.name,
        "depends_on": list(step.depends_on),
        "state": step.state,
        "task_id": t.id,
        "queue": t.queue,
        "handler": t.handler,
        "attempts": t.attempts,
        "error": error,
        "error_truncated": error_cut,
        "started_at": iso(t.started_at),
        "finished_at": iso(t.finished_at),
        "run_seconds": _seconds(t.started_at, t.finished_at),
    }


def run_view(run: DagRunRecord, limit: int = STEP_LIMIT) -> dict[str, Any]:
    shown = run.steps[:limit]
    return {
        **run_summary_view(run),
        "steps": [_step_view(s) for s in shown],
        "edges": [[parent, s.name] for s in shown for parent in s.depends_on],
        "steps_truncated": len(run.steps) > len(shown),
    }


def worker_view(w: WorkerStatus, now: datetime) -> dict[str, Any]:
    return {
        "name": w.name,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "in_flight": w.in_flight,
        "abandoned": w.abandoned,
        "claimed": w.claimed,
        "finished": w.finished,
        "started_at": iso(w.started_at),
        "seen_at": iso(w.seen_at),
        "seen_seconds_ago": round(max(0.0, (now - w.seen_at).total_seconds()), 1),
    }


def schedule_view(r: ScheduleRecord, now: datetime) -> dict[str, Any]:
    s = r.spec
    target = s.target if isinstance(s.target, dict) else {}
    return {
        "id": r.id,
        "namespace": s.namespace,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "concurrency_policy": s.concurrency_policy.value,
        "suspend": s.suspend,
        "kind": s.kind,
        "queue": target.get("queue"),
        "handler": target.get("handler"),
        "owner": s.owner,
        "next_fire_at": iso(r.upcoming(now)),
        "last_fire_at": iso(r.last_fire_tick),
        "last_fired_at": iso(r.last_fired_at),
        "last_task_id": r.last_task_id,
        "fire_count": r.fire_count,
        "skip_count": r.skip_count,
        "last_skip_reason": r.last_skip_reason,
    }
