"""Clients in two languages against the real server, as applications use it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

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
        assert bad.value.field == "task.priority"
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
