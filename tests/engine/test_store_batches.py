"""Batched worker writes keep a task's record right whatever order its reports arrive in."""

from __future__ import annotations

from datetime import timedelta

from taskflow.engine import Engine
from taskflow.models import AttemptResult, Outcome, TaskState, utcnow
from taskflow.store.tasks import Claim
from tests.engine.conftest import Submit


def failure(task_id: str, attempt: int, state: TaskState) -> AttemptResult:
    return AttemptResult(
        task_id=task_id,
        attempt=attempt,
        worker="w",
        state=state,
        outcome=Outcome.FAILED,
        finished_at=utcnow(),
        error=f"boom {attempt}",
        next_run_at=utcnow() + timedelta(seconds=1) if state is TaskState.RETRYING else None,
        count_failure=True,
    )


async def test_two_attempts_of_one_task_in_one_batch(engine: Engine, submit: Submit) -> None:
    task_id = await submit("h", max_retries=1)
    now = utcnow()
    await engine.store.record_batch(
        [Claim(task_id, 1, "w", now), Claim(task_id, 2, "w", now)],
        [failure(task_id, 1, TaskState.RETRYING), failure(task_id, 2, TaskState.FAILED)],
    )
    task = await engine.get(task_id, with_attempts=True)
    assert (task.state, task.attempts, task.failures) == (TaskState.FAILED, 2, 2)
    assert task.error == "boom 2"
    assert [(a.number, a.outcome) for a in task.attempt_history] == [(1, "failed"), (2, "failed")]


async def test_a_failure_reported_after_the_next_claim_still_counts(
    engine: Engine, submit: Submit
) -> None:
    task_id = await submit("h", max_retries=3)
    now = utcnow()
    await engine.store.record_batch([Claim(task_id, 1, "a", now)], [])
    await engine.store.record_batch([Claim(task_id, 2, "b", now)], [])  # claimed again first
    await engine.store.record_batch([], [failure(task_id, 1, TaskState.RETRYING)])
    task = await engine.get(task_id, with_attempts=True)
    assert (task.state, task.attempts, task.failures) == (TaskState.RUNNING, 2, 1)
    assert [(a.number, a.outcome) for a in task.attempt_history] == [(1, "failed"), (2, "running")]
