"""DAG runs through real workers: edges are exact, results flow to children, failures follow
the run's policy, and a run can be cancelled and retried from its failed steps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.errors import InvalidArgument
from taskflow.housekeeping import Housekeeper
from taskflow.keys import QueueRef
from taskflow.workflows.models import validate_dag
from taskflow.workflows.service import DagService
from taskflow_worker import PermanentError, Router, TaskContext
from tests.engine.conftest import (
    QUEUE,
    SubmitDag,
    WorkerHarness,
    check_order,
    eventually,
    wait_run,
)
from tests.engine.test_recovery import start_worker_process, wait_lines


def router_with(**behaviours: Any) -> Router:
    router = Router()

    @router.task("step")
    async def step(ctx: TaskContext, payload: dict[str, Any] | None) -> dict[str, Any]:
        payload = payload or {}
        if payload.get("fail"):
            raise PermanentError(f"step {ctx.step} was told to fail")
        await asyncio.sleep(float(payload.get("sleep", 0)))
        return {"step": ctx.step, "parents": dict(ctx.parents)}

    return router


async def test_diamond_runs_in_edge_order_and_children_see_their_parents(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    run_id = await submit_dag(
        [
            {"name": "a", "handler": "step"},
            {"name": "b", "handler": "step", "depends_on": ["a"]},
            {"name": "c", "handler": "step", "depends_on": ["a"]},
            {"name": "d", "handler": "step", "depends_on": ["b", "c"]},
        ]
    )
    workers.start(router_with(), concurrency=4)
    run = await wait_run(dags, run_id)
    assert run.state == "succeeded"
    check_order(run)
    steps = {s.name: s for s in run.steps}
    assert {n: s.state for n, s in steps.items()} == dict.fromkeys("abcd", "succeeded")
    assert all(s.task.attempts == 1 for s in steps.values())
    d = steps["d"].task.result
    assert set(d["parents"]) == {"b", "c"}
    assert d["parents"]["b"]["parents"]["a"] == {"step": "a", "parents": {}}
    assert steps["d"].depends_on == ("b", "c")


@pytest.mark.parametrize(
    ("steps", "field", "problem"),
    [
        ([], "dag.steps", "a run needs at least one step"),
        (
            [{"name": "a", "handler": "h"}, {"name": "a", "handler": "h"}],
            "dag.steps[1].name",
            "duplicate step name 'a' (also steps[0])",
        ),
        (
            [{"name": "a", "handler": "h", "depends_on": ["zz"]}],
            "dag.steps[0].depends_on[0]",
            "unknown step 'zz'",
        ),
        (
            [{"name": "a", "handler": "h", "depends_on": ["a"]}],
            "dag.steps[0].depends_on[0]",
            "step 'a' cannot depend on itself",
        ),
        (
            [
                {"name": "a", "handler": "h", "depends_on": ["c"]},
                {"name": "b", "handler": "h", "depends_on": ["a"]},
                {"name": "c", "handler": "h", "depends_on": ["b"]},
                {"name": "d", "handler": "h"},
            ],
            "dag.steps",
            "the steps form a cycle: a -> c -> b -> a",
        ),
        ([{"name": "a"}], "dag.steps[0].handler", "Field required"),
        ([{"name": "bad name", "handler": "h"}], "dag.steps[0].name", "is not a step name"),
        (
            [{"name": "a", "handler": "h", "delay_seconds": 5}],
            "dag.steps[0].delay_seconds",
            "cannot be delayed",
        ),
        ([{"name": "a", "handler": "h", "payload": float("nan")}], "dag.steps[0].payload", "NaN"),
    ],
)
def test_invalid_shapes_are_refused_naming_the_problem(
    steps: list[dict[str, Any]], field: str, problem: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_dag({"queue": "jobs", "steps": steps})
    assert info.value.field == field
    assert problem in info.value.problem


def test_too_many_steps_and_a_bad_policy_are_refused() -> None:
    many = [{"name": f"s{i}", "handler": "h"} for i in range(10_001)]
    with pytest.raises(InvalidArgument, match="at most 10000 steps"):
        validate_dag({"queue": "jobs", "steps": many})
    with pytest.raises(InvalidArgument) as info:
        validate_dag({"queue": "jobs", "failure_policy": "sometimes", "steps": many[:1]})
    assert info.value.field == "dag.failure_policy"


async def test_fail_fast_cancels_what_has_not_started(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    run_id = await submit_dag(
        [
            {"name": "root", "handler": "step"},
            {"name": "boom", "handler": "step", "payload": {"fail": True}, "depends_on": ["root"]},
            {"name": "slow", "handler": "step", "payload": {"sleep": 0.5}, "depends_on": ["root"]},
            {"name": "after_boom", "handler": "step", "depends_on": ["boom"]},
            {"name": "after_slow", "handler": "step", "depends_on": ["slow"]},
        ],
        failure_policy="fail_fast",
    )
    workers.start(router_with(), concurrency=4)
    run = await wait_run(dags, run_id)
    states = {s.name: s.state for s in run.steps}
    assert run.state == "failed"
    assert states["root"] == "succeeded" and states["boom"] == "failed"
    assert states["slow"] == "succeeded"  # it had started: it ran to its end
    assert states["after_boom"] == "skipped" and states["after_slow"] == "skipped"
    after = {s.name: s for s in run.steps}["after_slow"].task
    assert after.error == "cancelled: step 'boom' failed and the run fails fast"
    check_order(run)


async def test_continue_runs_every_branch_whose_parents_succeeded(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    run_id = await submit_dag(
        [
            {"name": "root", "handler": "step"},
            {"name": "boom", "handler": "step", "payload": {"fail": True}, "depends_on": ["root"]},
            {"name": "ok", "handler": "step", "depends_on": ["root"]},
            {"name": "below_boom", "handler": "step", "depends_on": ["boom"]},
            {"name": "deeper", "handler": "step", "depends_on": ["below_boom", "ok"]},
            {"name": "below_ok", "handler": "step", "depends_on": ["ok"]},
        ],
        failure_policy="continue",
    )
    workers.start(router_with(), concurrency=4)
    run = await wait_run(dags, run_id)
    states = {s.name: s.state for s in run.steps}
    assert run.state == "failed"
    assert states == {
        "root": "succeeded",
        "boom": "failed",
        "ok": "succeeded",
        "below_boom": "skipped",
        "deeper": "skipped",
        "below_ok": "succeeded",
    }
    skipped = {s.name: s for s in run.steps}["deeper"].task
    assert skipped.error == "skipped: step 'boom' did not succeed"
    check_order(run)


async def test_retry_runs_again_from_the_failed_steps(
    engine: Engine, dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    attempts: dict[str, int] = {}
    router = Router()

    @router.task("flaky")
    async def flaky(ctx: TaskContext, payload: None) -> str:
        attempts[ctx.step or ""] = attempts.get(ctx.step or "", 0) + 1
        if ctx.step == "b" and attempts["b"] == 1:
            raise PermanentError("b fails the first time")
        return f"{ctx.step} done"

    run_id = await submit_dag(
        [
            {"name": "a", "handler": "flaky"},
            {"name": "b", "handler": "flaky", "depends_on": ["a"]},
            {"name": "c", "handler": "flaky", "depends_on": ["b"]},
        ],
        failure_policy="continue",
    )
    workers.start(router)
    run = await wait_run(dags, run_id)
    assert (run.state, [s.state for s in run.steps]) == (
        "failed",
        ["succeeded", "failed", "skipped"],
    )
    await dags.retry(run_id)
    run = await wait_run(dags, run_id)
    assert run.state == "succeeded"
    assert attempts == {"a": 1, "b": 2, "c": 1}  # a kept its result and did not run again
    check_order(run)


async def test_cancel_a_run(
    engine: Engine, dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    started = asyncio.Event()
    router = Router()

    @router.task("long")
    async def long(ctx: TaskContext, payload: None) -> None:
        started.set()
        await asyncio.sleep(60)

    run_id = await submit_dag(
        [{"name": "a", "handler": "long"}, {"name": "b", "handler": "long", "depends_on": ["a"]}]
    )
    workers.start(router)
    await asyncio.wait_for(started.wait(), 20)
    run = await dags.cancel(run_id)
    assert run.state == "cancelled"
    assert [s.state for s in run.steps] == ["cancelled", "skipped"]
    task = await engine.get(run.steps[0].task.id, with_attempts=True)
    assert [a.outcome for a in task.attempt_history] == ["cancelled"]

    async def stopped() -> bool:
        return (await engine.queue_stats(QUEUE)).running == 0

    await eventually(stopped, what="the running step to be stopped")


async def test_fan_out_of_a_thousand_and_fan_in(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    width = 1000
    steps = [{"name": "root", "handler": "step"}]
    steps += [{"name": f"w{i}", "handler": "step", "depends_on": ["root"]} for i in range(width)]
    steps += [{"name": "sink", "handler": "step", "depends_on": [f"w{i}" for i in range(width)]}]
    run_id = await submit_dag(steps)
    workers.start(router_with(), concurrency=50)
    workers.start(router_with(), concurrency=50)
    run = await wait_run(dags, run_id, timeout=120)
    assert run.state == "succeeded"
    check_order(run)
    assert all(s.task.attempts == 1 for s in run.steps)
    sink = {s.name: s for s in run.steps}["sink"].task.result
    assert len(sink["parents"]) == width


async def test_a_chain_of_two_hundred(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    steps = [{"name": "s0", "handler": "step"}]
    steps += [
        {"name": f"s{i}", "handler": "step", "depends_on": [f"s{i - 1}"]} for i in range(1, 200)
    ]
    run_id = await submit_dag(steps)
    workers.start(router_with(), concurrency=4)
    run = await wait_run(dags, run_id, timeout=120)
    assert run.state == "succeeded"
    check_order(run)
    assert [s.name for s in run.steps] == [f"s{i}" for i in range(200)]


async def test_steps_on_several_queues(
    dags: DagService, workers: WorkerHarness, submit_dag: SubmitDag
) -> None:
    other = QueueRef("default", "other")
    run_id = await submit_dag(
        [
            {"name": "a", "handler": "step"},
            {"name": "b", "handler": "step", "queue": "other", "depends_on": ["a"]},
            {"name": "c", "handler": "step", "depends_on": ["b"]},
        ]
    )
    seen: dict[str, str] = {}
    router = Router()

    @router.task("step")
    async def step(ctx: TaskContext, payload: None) -> str:
        seen[ctx.step or ""] = ctx.queue
        return ctx.queue

    workers.start(router, queues=[QUEUE], name="main")
    workers.start(router, queues=[other], name="other")
    run = await wait_run(dags, run_id)
    assert run.state == "succeeded"
    assert seen == {"a": "jobs", "b": "other", "c": "jobs"}
    check_order(run)


async def test_a_worker_killed_mid_step_and_redis_flushed_mid_run(
    engine: Engine,
    dags: DagService,
    settings: Settings,
    submit_dag: SubmitDag,
    housekeeping: Housekeeper,
    workers: WorkerHarness,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "starts.log"
    slow = {"marker": str(marker), "seconds": 30}
    quick = {"marker": str(marker), "seconds": 0}
    run_id = await submit_dag(
        [
            {"name": "first", "handler": "mark_and_sleep", "payload": quick},
            {"name": "long", "handler": "mark_and_sleep", "payload": slow, "depends_on": ["first"]},
            *[
                {
                    "name": f"after{i}",
                    "handler": "mark_and_sleep",
                    "payload": quick,
                    "depends_on": ["long" if i == 0 else f"after{i - 1}"],
                }
                for i in range(20)
            ],
        ]
    )
    proc = start_worker_process(settings, concurrency=2, grace=1.0)
    try:
        await wait_lines(marker, 2)  # "long" started in the process
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    router = Router()
    flushed = asyncio.Event()

    @router.task("mark_and_sleep")
    async def fast(ctx: TaskContext, payload: dict[str, Any]) -> int:
        with Path(str(payload["marker"])).open("a") as f:
            f.write(f"{ctx.task_id} {ctx.attempt} in-process\n")
        if ctx.step == "after10" and not flushed.is_set():
            await engine.dispatcher.redis.flushall()  # Redis forgets everything mid-run
            flushed.set()
        return ctx.attempt

    workers.start(router, concurrency=2)
    run = await wait_run(dags, run_id, timeout=60)
    assert run.state == "succeeded", {s.name: s.state for s in run.steps}
    assert flushed.is_set()
    check_order(run)
    steps = {s.name: s for s in run.steps}
    outcomes = [a.outcome for a in steps["long"].task.attempt_history]
    assert outcomes == ["lost", "succeeded"]
    for step in run.steps:
        succeeded = [a for a in step.task.attempt_history if a.outcome == "succeeded"]
        assert len(succeeded) == 1, (step.name, step.task.attempt_history)
