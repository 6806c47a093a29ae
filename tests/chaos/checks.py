"""The checks every scenario ends with, read from PostgreSQL and the log of handler starts.

``settle`` waits (with a deadline) until every accepted task is terminal in PostgreSQL and
says how long that took; ``check`` then compares what PostgreSQL recorded with what each task
was planned to do (``TaskPlan``) and with the handler starts the workers logged. A
``Findings`` holds the counts of the results table and, for each invariant, the offending
tasks; ``Findings.violations`` turns the ones a scenario does not tolerate into messages that
name task ids, states, attempt histories and counts.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.chaos.load import SubmitLog, TaskPlan

TERMINAL = ("succeeded", "failed", "cancelled")
FAILURE_OUTCOMES = ("failed", "timeout")
SAMPLE = 5  # offending tasks quoted per invariant


def listing(header: str, items: Sequence[str], limit: int = SAMPLE) -> str:
    """``header``, then the first ``limit`` ``items`` indented, then how many more there are."""
    lines = [header, *(f"    {item}" for item in items[:limit])]
    if len(items) > limit:
        lines.append(f"    ... and {len(items) - limit} more")
    return "\n".join(lines)


@dataclass(frozen=True)
class Start:
    task_id: str
    attempt: int
    pid: int
    at: float
    handler: str


def read_starts(path: Path) -> list[Start]:
    """The log of handler starts (see ``tests.chaos.apps``)."""
    starts: list[Start] = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return starts
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        starts.append(Start(parts[0], int(parts[1]), int(parts[2]), float(parts[3]), parts[4]))
    return starts


def _connect(url: str, deadline: float) -> psycopg.Connection[Any]:
    """A connection, retried until ``deadline`` (PostgreSQL may be restarting)."""
    while True:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def settle(url: str, task_ids: Sequence[str], since: float, timeout: float) -> float | None:
    """Seconds from ``since`` (a ``time.monotonic()``) until every task in ``task_ids`` is
    terminal in PostgreSQL; None when some are not within ``timeout`` seconds from now."""
    deadline = time.monotonic() + timeout
    ids = list(task_ids)
    conn: psycopg.Connection[Any] | None = None
    try:
        while True:
            try:
                if conn is None:
                    conn = _connect(url, deadline)
                row = conn.execute(
                    "SELECT count(*) FROM tasks WHERE id = ANY(%s::uuid[]) AND state = ANY(%s)",
                    (ids, list(TERMINAL)),
                ).fetchone()
                done = int(row[0]) if row else 0
            except psycopg.OperationalError:
                conn = None
                done = -1
            if done == len(ids):
                return time.monotonic() - since
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
    finally:
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class AttemptRow:
    number: int
    outcome: str
    worker: str | None
    error: str | None


@dataclass(frozen=True)
class TaskRow:
    id: str
    key: str | None
    state: str
    attempts: int
    failures: int
    max_retries: int
    error: str | None
    history: tuple[AttemptRow, ...]


@dataclass
class Findings:
    """What a scenario's run left in PostgreSQL and in the log of handler starts."""

    scenario: str
    accepted: int = 0
    states: Counter[str] = field(default_factory=Counter)
    recovery_seconds: float | None = None
    #: accepted ids PostgreSQL does not have
    missing: list[str] = field(default_factory=list)
    #: accepted, present, but not terminal after the recovery deadline
    unfinished: list[str] = field(default_factory=list)
    #: more than one succeeded attempt row
    double_recorded: list[str] = field(default_factory=list)
    #: attempt rows still 'running' although the task is terminal or nothing runs it
    running_attempts: list[str] = field(default_factory=list)
    #: terminal state not the planned one
    wrong_state: list[str] = field(default_factory=list)
    #: state and attempt history disagree (e.g. succeeded without a succeeded attempt)
    history_mismatch: list[str] = field(default_factory=list)
    #: more failures than 1 + max_retries, or failed before the retries were used up
    retry_violations: list[str] = field(default_factory=list)
    #: ids of tasks whose handler started more often than their plan needs
    reruns: list[str] = field(default_factory=list)
    planned_starts: dict[str, int] = field(default_factory=dict, repr=False)
    extra_starts: int = 0
    #: the same (task, attempt number) started twice
    reused_attempts: list[str] = field(default_factory=list)
    #: a handler start with no attempt row of that number
    unrecorded_starts: list[str] = field(default_factory=list)
    #: final error does not say what was wrong
    unclear_errors: list[str] = field(default_factory=list)
    #: tasks in the queue that no submission of this scenario asked for
    strangers: list[str] = field(default_factory=list)
    #: what the load generator saw (keys retried, errors surfaced to the caller, ...)
    submits: dict[str, Any] = field(default_factory=dict)
    #: scenario-specific figures
    notes: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, TaskRow] = field(default_factory=dict, repr=False)
    starts_by_task: dict[str, list[Start]] = field(default_factory=dict, repr=False)

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.unfinished)

    def row(self) -> dict[str, Any]:
        """The scenario's line of the results table."""
        return {
            "scenario": self.scenario,
            "accepted": self.accepted,
            "succeeded": self.states.get("succeeded", 0),
            "failed": self.states.get("failed", 0),
            "cancelled": self.states.get("cancelled", 0),
            "re-run": len(self.reruns),
            "lost": self.lost,
            "double-recorded": len(self.double_recorded),
            "recovery_s": None
            if self.recovery_seconds is None
            else round(self.recovery_seconds, 1),
        }

    def describe(self, task_id: str) -> str:
        row = self.rows.get(task_id)
        starts = self.starts_by_task.get(task_id, [])
        started = ", ".join(f"#{s.attempt}@pid{s.pid}" for s in starts[:6]) or "never"
        if len(starts) > 6:
            started += f", ... ({len(starts)} in all)"
        if row is None:
            return f"{task_id}: not in PostgreSQL; handler starts: {started}"
        history = ", ".join(f"#{a.number} {a.outcome}" for a in row.history) or "none"
        error = f", error {row.error[:80]!r}" if row.error else ""
        return (
            f"{task_id} ({row.key}): state {row.state}, attempts {row.attempts}, failures "
            f"{row.failures}/{row.max_retries}+1{error}; attempt rows: {history}; handler "
            f"starts: {started}"
        )

    def violations(
        self, *, reruns_allowed: bool = False, reused_attempts_allowed: bool = False
    ) -> list[str]:
        """One message per broken invariant (empty when all hold)."""
        out: list[str] = []

        def report(items: Sequence[str], what: str) -> None:
            if items:
                out.append(
                    listing(f"{len(items)} of {self.accepted} accepted task(s) {what}", items)
                )

        report(self.missing, "are missing from PostgreSQL (lost)")
        report(
            [self.describe(t) for t in self.unfinished],
            "are not terminal after the recovery deadline (lost)",
        )
        report([self.describe(t) for t in self.double_recorded], "have two succeeded attempts")
        report(self.running_attempts, "have an attempt row left 'running'")
        report(self.wrong_state, "ended in the wrong state")
        report(self.history_mismatch, "have a state their attempt history contradicts")
        report(self.retry_violations, "broke their retry limits")
        report(self.unrecorded_starts, "ran an attempt PostgreSQL has no row for")
        report(self.unclear_errors, "failed without an error that says what was wrong")
        report(self.strangers, "were never asked for (extra tasks in the queue)")
        if not reruns_allowed:
            report(
                [
                    f"{len(self.starts_by_task[t])} starts, {self.planned_starts[t]} planned: "
                    f"{self.describe(t)}"
                    for t in self.reruns
                ],
                f"ran more often than planned ({self.extra_starts} extra handler start(s))",
            )
        if not reused_attempts_allowed:
            report(self.reused_attempts, "started the same attempt number twice")
        if self.submits.get("conflicting"):
            out.append(f"a key was answered with two task ids: {self.submits['conflicting'][:3]}")
        if self.submits.get("rejected"):
            out.append(f"submissions were rejected: {self.submits['rejected'][:3]}")
        if self.submits.get("unconfirmed"):
            out.append(
                f"{self.submits['unconfirmed']} submission(s) were never confirmed before the"
                " submit deadline"
            )
        return out


def check(
    scenario: str,
    url: str,
    queue: str,
    plans: Sequence[TaskPlan],
    log: SubmitLog,
    start_log: Path,
    *,
    recovery_seconds: float | None,
) -> Findings:
    """Compare PostgreSQL and the handler starts with the plans of the accepted tasks."""
    plan_by_key = {p.key: p for p in plans}
    accepted = dict(log.accepted)
    f = Findings(scenario=scenario, accepted=len(accepted), recovery_seconds=recovery_seconds)
    f.submits = {
        "retried_keys": len(log.retried_keys),
        "surfaced_errors": dict(log.surfaced),
        "conflicting": list(log.conflicting),
        "rejected": list(log.rejected),
        "unconfirmed": len(log.unconfirmed),
    }
    rows = _read_rows(url, queue)
    f.rows = rows
    starts = read_starts(start_log)
    by_task: dict[str, list[Start]] = defaultdict(list)
    for s in starts:
        by_task[s.task_id].append(s)
    f.starts_by_task = dict(by_task)

    asked = {p.key for p in plans}
    f.strangers = [f.describe(r.id) for r in rows.values() if r.key not in asked]

    for key, task_id in accepted.items():
        plan = plan_by_key[key]
        found = rows.get(task_id)
        if found is None:
            f.missing.append(f"{task_id} ({key})")
            continue
        f.states[found.state] += 1
        check_task(f, plan, found, by_task.get(task_id, []))
    return f


def check_task(f: Findings, plan: TaskPlan, row: TaskRow, starts: list[Start]) -> None:
    """Add to ``f`` what is wrong with one accepted task."""
    tid = row.id
    expect = plan.expect
    outcomes = Counter(a.outcome for a in row.history)
    if row.state not in TERMINAL:
        f.unfinished.append(tid)
    elif row.state != expect:
        f.wrong_state.append(f"expected {expect} ({plan.kind}): {f.describe(tid)}")
    if outcomes["succeeded"] > 1:
        f.double_recorded.append(tid)
    if outcomes["running"] and row.state in TERMINAL:
        numbers = [a.number for a in row.history if a.outcome == "running"]
        f.running_attempts.append(f"attempts {numbers} of {f.describe(tid)}")
    if row.state == "succeeded" and outcomes["succeeded"] == 0:
        f.history_mismatch.append(f"succeeded without a succeeded attempt: {f.describe(tid)}")
    if row.state in ("failed", "cancelled") and outcomes["succeeded"]:
        f.history_mismatch.append(f"{row.state} with a succeeded attempt: {f.describe(tid)}")
    numbers = [a.number for a in row.history]
    if numbers and max(numbers) > row.attempts:
        f.history_mismatch.append(
            f"attempt #{max(numbers)} recorded but attempts = {row.attempts}: {f.describe(tid)}"
        )

    failure_rows = sum(outcomes[o] for o in FAILURE_OUTCOMES)
    limit = row.max_retries + 1
    if row.failures > limit or failure_rows > limit:
        f.retry_violations.append(
            f"{row.failures} failures, {failure_rows} failed attempt rows, limit {limit}: "
            f"{f.describe(tid)}"
        )
    elif plan.kind == "doomed" and row.state == "failed" and len(starts) < plan.starts:
        f.retry_violations.append(
            f"failed after {len(starts)} run(s), {plan.starts} allowed: {f.describe(tid)}"
        )

    f.planned_starts[tid] = plan.starts
    if len(starts) > plan.starts and expect != "cancelled":
        f.reruns.append(tid)
        f.extra_starts += len(starts) - plan.starts
    per_attempt = Counter(s.attempt for s in starts)
    reused = sorted(n for n, c in per_attempt.items() if c > 1)
    if reused:
        f.reused_attempts.append(f"attempt(s) {reused}: {f.describe(tid)}")
    recorded = set(numbers)
    unrecorded = sorted({s.attempt for s in starts} - recorded)
    if unrecorded and row.state in TERMINAL:
        f.unrecorded_starts.append(f"attempt(s) {unrecorded}: {f.describe(tid)}")

    word = plan.error_contains
    if word and row.state == "failed" and word.lower() not in (row.error or "").lower():
        f.unclear_errors.append(f"error should mention {word!r}: {f.describe(tid)}")


def _read_rows(url: str, queue: str) -> dict[str, TaskRow]:
    deadline = time.monotonic() + 30
    with _connect(url, deadline) as conn:
        tasks = conn.execute(
            """SELECT id::text, idempotency_key, state, attempts, failures, max_retries, error
               FROM tasks WHERE queue = %s""",
            (queue,),
        ).fetchall()
        attempts = conn.execute(
            """SELECT a.task_id::text, a.number, a.outcome, a.worker, a.error
               FROM task_attempts a JOIN tasks t ON t.id = a.task_id
               WHERE t.queue = %s ORDER BY a.task_id, a.number""",
            (queue,),
        ).fetchall()
    history: dict[str, list[AttemptRow]] = defaultdict(list)
    for task_id, number, outcome, worker, error in attempts:
        history[task_id].append(AttemptRow(number, outcome, worker, error))
    return {
        t[0]: TaskRow(t[0], t[1], t[2], t[3], t[4], t[5], t[6], tuple(history.get(t[0], ())))
        for t in tasks
    }
