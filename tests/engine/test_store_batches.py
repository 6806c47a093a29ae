"""The record of attempts is fenced: each attempt's outcome is written once, whatever order
reports arrive in, however often a batch is repeated, and a bad row never blocks the others."""

from __future__ import annotations

from datetime import timedelta

from taskflow.completion import CompletionRecorder
from taskflow.engine import Engine
from taskflow.models import AttemptResult, ExpiredLease, Outcome, TaskState, utcnow
from taskflow.store.tasks import Claim
from tests.engine.conftest import QUEUE, Submit


def ended(
    task_id: str,
    attempt: int,
    state: TaskState,
    *,
    token: str = "t",
    result_json: str | None = None,
) -> AttemptResult:
    failed = state in (TaskState.RETRYING, TaskState.FAILED)
    return AttemptResult(
        task_id=task_id,
        attempt=attempt,
        token=token,
        worker="w",
        state=state,
        outcome=Outcome.FAILED if failed else Outcome.SUCCEEDED,
        finished_at=utcnow(),
        result_json=result_json,
        error=f"boom {attempt}" if failed else None,
        next_run_at=utcnow() + timedelta(seconds=1) if state is TaskState.RETRYING else None,
        count_failure=failed,
    )


def claim(task_id: str, attempt: int, token: str = "t") -> Claim:
    return Claim(task_id, attempt, "w", utcnow(), token)


async def history(engine: Engine, task_id: str) -> list[tuple[int, str]]:
    task = await engine.get(task_id, with_attempts=True)
    return [(a.number, a.outcome) for a in task.attempt_history]


async def test_two_attempts_of_one_task_in_one_batch(engine: Engine, submit: Submit) -> None:
    task_id = await submit("h", max_retries=1)
    record = await engine.store.record_batch(
        [claim(task_id, 1), claim(task_id, 2)],
        [ended(task_id, 1, TaskState.RETRYING), ended(task_id, 2, TaskState.FAILED)],
    )
    assert all(r.won for r in record.results.values())
    task = await engine.get(task_id)
    assert (task.state, task.attempts, task.failures) == (TaskState.FAILED, 2, 2)
    assert task.error == "boom 2"
    assert await history(engine, task_id) == [(1, "failed"), (2, "failed")]


async def test_a_report_from_a_lease_taken_over_is_refused(engine: Engine, submit: Submit) -> None:
    task_id = await submit("h", max_retries=3)
    await engine.store.record_batch([claim(task_id, 1, "a")], [])
    await engine.store.record_batch([claim(task_id, 2, "b")], [])  # a new lease: 1 is gone
    record = await engine.store.record_batch([], [ended(task_id, 1, TaskState.RETRYING, token="a")])
    assert not record.results[(task_id, 1)].won
    assert record.results[(task_id, 1)].state is TaskState.RUNNING
    task = await engine.get(task_id)
    assert (task.state, task.attempts, task.failures) == (TaskState.RUNNING, 2, 0)
    assert await history(engine, task_id) == [(1, "lost"), (2, "running")]


async def test_a_repeated_batch_changes_nothing_and_is_recognised(
    engine: Engine, submit: Submit
) -> None:
    task_id = await submit("h", max_retries=3)
    batch = ([claim(task_id, 1)], [ended(task_id, 1, TaskState.RETRYING)])
    first = await engine.store.record_batch(*batch)
    again = await engine.store.record_batch(*batch)  # as after a commit whose reply was lost
    assert first.results == again.results
    assert again.results[(task_id, 1)].won
    task = await engine.get(task_id)
    assert (task.state, task.failures) == (TaskState.RETRYING, 1)


async def test_the_first_final_state_wins(engine: Engine, submit: Submit) -> None:
    task_id = await submit("h")
    await engine.store.record_batch([claim(task_id, 1)], [])
    await engine.cancel(task_id)
    record = await engine.store.record_batch(
        [], [ended(task_id, 1, TaskState.SUCCEEDED, result_json="1")]
    )
    assert record.results[(task_id, 1)].won is False
    assert record.results[(task_id, 1)].state is TaskState.CANCELLED
    task = await engine.get(task_id)
    assert task.state is TaskState.CANCELLED and task.result is None
    assert await history(engine, task_id) == [(1, "cancelled")]


async def test_claims_of_tasks_that_already_ended(engine: Engine, submit: Submit) -> None:
    done, cancelled = await submit("h"), await submit("h")
    await engine.store.record_batch(
        [claim(done, 1)], [ended(done, 1, TaskState.SUCCEEDED, result_json="1")]
    )
    await engine.cancel(cancelled)
    record = await engine.store.record_batch([claim(done, 2), claim(cancelled, 1)], [])
    assert record.already_ended == {(done, 2), (cancelled, 1)}
    assert await history(engine, done) == [(1, "succeeded"), (2, "superseded")]
    assert await history(engine, cancelled) == [(1, "cancelled")]
    # a late claim is still a claim; the task keeps the state and result it ended with
    finished = await engine.get(done)
    assert (finished.attempts, finished.state, finished.result) == (2, TaskState.SUCCEEDED, 1)
    assert (await engine.get(cancelled)).attempts == 1


async def test_expired_leases_follow_what_was_recorded(engine: Engine, submit: Submit) -> None:
    vanished, recorded, poison = await submit("h"), await submit("h"), await submit("h")
    await engine.store.record_batch(
        [claim(vanished, 1), claim(recorded, 1), claim(poison, 5)],
        [ended(recorded, 1, TaskState.RETRYING)],
    )
    outcomes, _ = await engine.store.end_expired(
        [
            ExpiredLease(vanished, 1, "t", "w", lost=0, cancel_requested=False),
            ExpiredLease(recorded, 1, "t", "w", lost=0, cancel_requested=False),
            ExpiredLease(poison, 5, "t", "w", lost=4, cancel_requested=False),
        ],
        max_lost=5,
        poison_error="gave up",
    )
    by_id = {o.task_id: o for o in outcomes}
    assert (by_id[vanished].ended, by_id[vanished].state) == (True, TaskState.QUEUED)
    assert (by_id[recorded].ended, by_id[recorded].state) == (False, TaskState.RETRYING)
    assert by_id[recorded].failures == 1 and by_id[recorded].run_at is not None
    assert (by_id[poison].ended, by_id[poison].state) == (True, TaskState.FAILED)
    assert (await engine.get(poison)).error == "gave up"
    assert await history(engine, vanished) == [(1, "lost")]
    assert await history(engine, recorded) == [(1, "failed")]


async def test_a_refused_row_fails_alone_and_the_rest_is_recorded(
    engine: Engine, submit: Submit
) -> None:
    ids = [await submit("h") for _ in range(5)]
    recorder = CompletionRecorder(engine.store, engine.dispatcher)
    recorder.start()
    try:
        for task_id in ids:
            recorder.claimed(claim(task_id, 1))
        # A result that slipped past the checks: PostgreSQL refuses it, and with it the batch.
        futures = [
            recorder.end(
                QUEUE,
                ended(t, 1, TaskState.SUCCEEDED, result_json="NaN" if i == 2 else str(i)),
            )
            for i, t in enumerate(ids)
        ]
        outcomes = [await f for f in futures]
    finally:
        await recorder.close(5.0)
    assert all(o.recorded for o in outcomes)
    states = [(await engine.get(t)).state for t in ids]
    assert states == [TaskState.SUCCEEDED] * 2 + [TaskState.FAILED] + [TaskState.SUCCEEDED] * 2
    bad = await engine.get(ids[2])
    assert bad.error is not None and bad.error.startswith(
        "the attempt's outcome could not be stored"
    )
    assert [(await engine.get(t)).result for t in ids if t != ids[2]] == [0, 1, 3, 4]
