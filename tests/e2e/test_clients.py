"""Clients in two languages against the real server, as applications use it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

from taskflow_client import AsyncClient, InvalidArgumentError, NotFoundError, TaskState


async def test_go_client_submits_and_waits(stack: str, go_client_binary: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(go_client_binary),
        "-addr",
        stack,
        "-queue",
        "default",
        "-handler",
        "add",
        "-payload",
        '{"a": 2, "b": 3}',
        "-timeout",
        "60s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    line = json.loads(out.decode().strip().splitlines()[-1])
    assert line["state"] == "succeeded"
    assert line["result"] == 5


async def test_python_client_batch_all_succeed_once(stack: str) -> None:
    async with AsyncClient(stack) as client:
        ids = await client.submit_many(
            [
                {"queue": "default", "handler": "add", "payload": {"a": i, "b": 1}}
                for i in range(300)
            ]
        )
        tasks = await asyncio.gather(*(client.wait(i, timeout=120) for i in ids))
    assert [t.state for t in tasks] == [TaskState.SUCCEEDED] * 300
    assert [t.result for t in tasks] == [i + 1 for i in range(300)]
    assert {t.attempts for t in tasks} == {1}


async def test_python_client_errors_name_the_problem(stack: str) -> None:
    async with AsyncClient(stack) as client:
        with pytest.raises(InvalidArgumentError) as bad:
            await client.submit("default", "add", {"a": 1}, priority=5000)
        assert bad.value.field == "priority"  # refused by the client, before any call
        with pytest.raises(NotFoundError):
            await client.get("01a2085b-12d4-7a91-8a3a-1d1d1bf9a8a8")
        assert (await client.queue_stats("default")).ready == 0


async def test_cancel_through_the_client(stack: str) -> None:
    async with AsyncClient(stack) as client:
        task_id = await client.submit("default", "sleep", {"seconds": 30})

        async def running() -> bool:
            return (await client.get(task_id)).state == TaskState.RUNNING

        deadline = asyncio.get_running_loop().time() + 30
        while not await running():
            assert asyncio.get_running_loop().time() < deadline, "task never started"
            await asyncio.sleep(0.05)
        await client.cancel(task_id)
        task = await client.wait(task_id, timeout=30)
    assert task.state == TaskState.CANCELLED


async def test_python_client_runs_a_dag_built_from_chain_and_group(stack: str) -> None:
    from taskflow_client import Step, chain, group

    flow = chain(
        Step("one", "sum_parents", 1),
        group(Step("two", "sum_parents", 2), Step("three", "sum_parents", 3)),
    ).then(Step("total", "sum_parents", 0))
    async with AsyncClient(stack) as client:
        run_id = await client.submit_dag(flow, queue="default")
        run = await client.wait_dag(run_id, timeout=60, results=True)
        assert run.state == "succeeded"
        assert run.steps == dict.fromkeys(["one", "two", "three", "total"], "succeeded")
        assert run.result("total") == (1 + 2) + (1 + 3)
        assert run.step_info["total"].depends_on == ("two", "three")
        snapshots = [r.state async for r in client.watch_dag(run_id)]
        assert snapshots == ["succeeded"]
        listed = await client.list_dags()
        assert [r.id for r in listed] == [run_id] and listed[0].step_counts == {"succeeded": 4}
        with pytest.raises(InvalidArgumentError) as info:
            await client.submit_dag(
                [Step("a", "noop", depends_on=["b"]), Step("b", "noop", depends_on=["a"])],
                queue="default",
            )
        assert "cycle" in str(info.value)


async def test_sync_client_cancels_a_dag(stack: str) -> None:
    await asyncio.to_thread(_cancel_a_dag, stack)


def _cancel_a_dag(stack: str) -> None:
    from taskflow_client import Client, Step

    with Client(stack) as client:
        run_id = client.submit_dag(
            [Step("slow", "sleep", {"seconds": 30}), Step("after", "noop", depends_on=["slow"])],
            queue="default",
            failure_policy="continue",
        )
        deadline = time.monotonic() + 30
        while client.get_dag(run_id).steps["slow"] != "running":
            assert time.monotonic() < deadline, "the first step never started"
            time.sleep(0.05)
        cancelled = client.cancel_dag(run_id)
        assert (cancelled.state, cancelled.steps) == (
            "cancelled",
            {"slow": "cancelled", "after": "skipped"},
        )
        with pytest.raises(InvalidArgumentError):
            client.retry_dag("not-a-run")


async def test_go_client_submits_a_dag(stack: str, go_client_binary: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "dags"
    dag = examples / "diamond.json"
    # the Go example reads JSON; the file says what the YAML one does
    assert json.loads(dag.read_text()) == yaml.safe_load((examples / "diamond.yaml").read_text())
    proc = await asyncio.create_subprocess_exec(
        str(go_client_binary),
        "-addr",
        stack,
        "-dag",
        str(dag),
        "-timeout",
        "60s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    line = json.loads(out.decode().strip().splitlines()[-1])
    assert line["state"] == "succeeded"
    assert line["steps"] == dict.fromkeys(["fetch", "resize", "scan", "publish"], "succeeded")
