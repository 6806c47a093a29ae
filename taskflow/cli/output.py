"""How tasks, queues and schedules read: as text for people, as JSON with ``--json``; and the
one-line progress of a task being waited for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskflow_client import QueueStats, Schedule, Task


def print_queues(stats: Sequence[QueueStats], *, as_json: bool, where: str) -> None:
    """The counters of ``stats`` as a table; ``where`` names what was listed, for when it
    holds no queue yet."""
    if as_json:
        print(json.dumps([jsonable(s) for s in stats], indent=2))
        return
    if not stats:
        print(f"no queues in {where} yet")
        return
    columns = ["namespace", "queue", "ready", "scheduled", "running", "succeeded", "failed"]
    columns.append("cancelled")
    rows = [[str(getattr(s, c)) for c in columns] for s in stats]
    table([c.upper() for c in columns], rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows under a header, in columns as wide as their widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def progress_line(task: Task, elapsed: float) -> str:
    parts = [str(task.state)]
    if task.attempts:
        parts.append(f"attempt {task.attempts}")
    if (task.progress or task.progress_message) and task.state != "succeeded":
        parts.append(f"{task.progress:.0%} {task.progress_message or ''}".rstrip())
    if task.error and not task.done:
        parts.append(f"last error: {task.error}")
    parts.append(f"{elapsed:.1f}s")
    return "  ".join(parts)


def print_task(task: Task, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(jsonable(task), indent=2))
        return
    rows: list[tuple[str, str]] = [
        ("task", task.id),
        ("state", str(task.state)),
        ("queue", f"{task.namespace}/{task.queue}"),
        ("handler", task.handler),
        ("payload", json.dumps(task.payload)),
    ]
    if task.priority:
        rows.append(("priority", str(task.priority)))
    if task.result is not None or task.state == "succeeded":
        rows.append(("result", json.dumps(task.result)))
    if task.error:
        rows.append(("error", task.error))
    if (task.progress or task.progress_message) and task.state != "succeeded":
        rows.append(("progress", f"{task.progress:.0%} {task.progress_message or ''}".rstrip()))
    rows.append(("attempts", f"{task.attempts} (max retries {task.max_retries})"))
    delayed = (
        task.run_at and task.created_at and (task.run_at - task.created_at).total_seconds() > 1
    )
    for label, when in (
        ("created", task.created_at),
        ("run at", task.run_at if delayed else None),
        ("started", task.started_at),
        ("finished", task.finished_at),
    ):
        if when is not None:
            rows.append((label, _when(when)))
    if task.started_at and task.finished_at:
        rows.append(("took", f"{(task.finished_at - task.started_at).total_seconds():.3f}s"))
    for label, value in rows:
        print(f"{label:<10}{value}")
    if task.traceback and task.state in ("retrying", "failed"):
        print("traceback of the last failed attempt")
        print("  " + task.traceback.rstrip().replace("\n", "\n  "))
    if task.attempt_history:
        print("history")
        for a in task.attempt_history:
            took = ""
            if a.started_at and a.finished_at:
                took = f"{(a.finished_at - a.started_at).total_seconds():.3f}s"
            line = f"  #{a.number:<3}{a.outcome:<10} {_when(a.started_at):<20} {took:>8}"
            line += f"  {a.worker}"
            if a.error:
                line += f"  {a.error}"
            print(line.rstrip())


def _when(value: Any) -> str:
    return "" if value is None else str(value.astimezone().strftime("%Y-%m-%d %H:%M:%S"))


def jsonable(value: Any) -> Any:
    import dataclasses
    from datetime import datetime

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


# -- schedules --------------------------------------------------------------------------------


def print_schedules(
    schedules: Sequence[Schedule], *, as_json: bool, where: str, now: datetime
) -> None:
    """Schedules as a table: NEXT and LAST fire times (local time, and how far from now)."""
    if as_json:
        print(json.dumps([jsonable(s) for s in schedules], indent=2))
        return
    if not schedules:
        print(f"no schedules in {where}")
        return
    header = ["NAMESPACE", "NAME", "SCHEDULE", "POLICY", "NEXT", "LAST", "FIRED", "SKIPPED"]
    header.append("TASK")
    rows = [
        [
            s.namespace,
            s.name,
            f"{s.cron} {s.timezone}",
            str(s.concurrency_policy),
            _next_column(s, now),
            _relative(s.last_fire_time, now) if s.last_fire_time else "-",
            str(s.fire_count),
            str(s.skip_count),
            f"{s.task.queue}/{s.task.handler}" if s.task else "-",
        ]
        for s in schedules
    ]
    table(header, rows)


def next_fire_text(schedule: Schedule, now: datetime) -> str:
    """``next fire 2024-06-03 10:00:00 (in 4m)``, ``suspended``..."""
    column = _next_column(schedule, now)
    return column if schedule.suspend or schedule.next_fire_time is None else f"next fire {column}"


def _next_column(schedule: Schedule, now: datetime) -> str:
    if schedule.suspend:
        return "suspended"
    if schedule.next_fire_time is None:
        return "-"
    text = _relative(schedule.next_fire_time, now)
    return f"{text}, overdue" if schedule.next_fire_time < now else text


def _relative(value: datetime, now: datetime) -> str:
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size:
            amount = f"{span // size:.0f}{unit}"
            break
    else:
        amount = f"{span:.0f}s"
    return f"{_when(value)} ({'in ' + amount if seconds >= 0 else amount + ' ago'})"
