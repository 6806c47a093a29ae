"""``taskflow top`` against a running API server, and the demo stream's table."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from taskflow.api import ApiServer
from taskflow.cli import main
from taskflow.devserver.demo import QueueRow, _Lines, demo_table
from taskflow.engine import Engine
from taskflow.models import validate_submission
from taskflow_worker.runtime import Worker
from tests.dashboard.conftest import QUEUE, until


async def top(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["top", "--once", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_top_shows_queues_and_workers(
    engine: Engine, api_server: ApiServer, worker: Worker, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = validate_submission({"queue": QUEUE.name, "handler": "add", "payload": {"a": 1, "b": 2}})
    (submitted,) = await engine.submit([spec])

    async def done() -> Any:
        return (await engine.get(submitted.task_id)).done and await engine.workers()

    await until(done)
    url = f"http://127.0.0.1:{api_server.http_port}"
    code, out, err = await top(capsys, "--url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"TaskFlow top  {url}")
    header = next(line for line in lines if line.startswith("QUEUE"))
    assert header.split()[:5] == ["QUEUE", "READY", "SCHED", "RUNNING", "BACKLOG"]
    row = next(line for line in lines if line.startswith(QUEUE.name))
    assert row.split()[-3:] == ["1", "0", "0"]  # succeeded, failed, dead letters
    workers = next(i for i, line in enumerate(lines) if line.startswith("WORKER"))
    assert worker.config.name in lines[workers + 1]
    assert f"{QUEUE.qualified}" in lines[workers + 1]


async def test_top_names_a_server_it_cannot_reach(capsys: pytest.CaptureFixture[str]) -> None:
    from taskflow.embedded import free_port

    port = free_port()
    code, _, err = await top(capsys, "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert err.startswith(
        f"taskflow top: cannot reach the TaskFlow dashboard at http://127.0.0.1:{port}"
    )


async def test_top_without_the_token_says_how_to_give_it(
    api_server: ApiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskflow.api.tokens import TokenRegistry

    monkeypatch.setattr(api_server.dashboard, "tokens", TokenRegistry("t0ken"))
    monkeypatch.delenv("TASKFLOW_API_TOKEN", raising=False)
    url = f"http://127.0.0.1:{api_server.http_port}"
    code, _, err = await top(capsys, "--url", url)
    assert code == 1 and "pass --token or set TASKFLOW_API_TOKEN" in err
    code, out, err = await top(capsys, "--url", url, "--token", "t0ken")
    assert code == 0, err
    assert out.startswith("TaskFlow top")


ROWS = [
    QueueRow("default", 120, 3, 7, 2, 100, 4, 24.6),
    QueueRow("reports", 0, 0, 1, 0, 9, 0, 0.5),
]


def test_the_demo_table_has_a_row_per_queue() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(
        demo_table(ROWS, "http://127.0.0.1:8080/dashboard/")
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("TaskFlow demo")
    assert lines[1].split() == [
        "QUEUE",
        "SUBMITTED",
        "READY",
        "RUNNING",
        "RETRYING",
        "SUCCEEDED",
        "FAILED",
        "DONE/S",
    ]
    assert lines[2].split() == ["default", "120", "3", "7", "2", "100", "4", "25"]
    assert lines[3].split() == ["reports", "0", "0", "1", "0", "9", "0", "0"]
    assert lines[4].rstrip() == "dashboard http://127.0.0.1:8080/dashboard/"


def test_without_a_terminal_the_demo_prints_one_line_a_second() -> None:
    out = io.StringIO()
    _Lines(out).show(ROWS)
    line = out.getvalue().strip()
    assert line.split()[1:] == [
        "submitted",
        "120",
        "succeeded",
        "109",
        "failed",
        "4",
        "retrying",
        "2",
        "ready",
        "3",
        "running",
        "8",
        "done/s",
        "25",
    ]
