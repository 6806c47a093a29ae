"""``TASKFLOW_EVENT_LOOP=uvloop``: the API server and a worker, each its own process as in
production, run a task end to end on uvloop; a loop that cannot run is a usage error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow.bench.processes import terminate
from taskflow.embedded import free_port
from taskflow.store import apply_migrations
from taskflow_client import Client

pytest.importorskip("uvloop")

DEADLINE = 60.0


def _env(redis_url: str, database_url: str, loop: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    return env | {
        "TASKFLOW_REDIS_URL": redis_url,
        "TASKFLOW_DATABASE_URL": database_url,
        "TASKFLOW_EVENT_LOOP": loop,
    }


def _taskflow(*argv: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "taskflow", "--log-format", "text", *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def uvloop_stack(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    asyncio.run(apply_migrations(database_url))
    env = _env(redis_url, database_url, "uvloop")
    grpc_port = free_port()
    log = tmp_path / "servers.log"
    procs = [
        _taskflow(
            "api",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(free_port()),
            env=env,
            log=log,
        ),
        _taskflow(
            "worker",
            "--app",
            "taskflow_worker.examples:router",
            "--health-port",
            str(free_port()),
            env=env,
            log=log,
        ),
    ]
    try:
        yield f"127.0.0.1:{grpc_port}", log
        exited = [p.args for p in procs if p.poll() is not None]
        assert not exited, f"{exited} exited early:\n{log.read_text()}"
    finally:
        terminate(procs, grace=DEADLINE)


def test_api_and_worker_run_a_task_on_uvloop(uvloop_stack: tuple[str, Path]) -> None:
    addr, log = uvloop_stack
    with Client(addr, timeout=10.0) as c:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                task_id = c.submit("default", "add", {"a": 2, "b": 3})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert c.wait(task_id, timeout=DEADLINE).result == 5, log.read_text()
    assert log.read_text().count("event loop: uvloop") == 2, log.read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--app", "taskflow_worker.examples:router"],
        [  # free ports, though the command stops before it binds them
            "api",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
        ],
    ],
    ids=["worker", "api"],
)
def test_an_unknown_event_loop_is_a_usage_error(
    argv: list[str], redis_url: str, database_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskflow", *argv],
        env=_env(redis_url, database_url, "tokio"),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 2
    assert "TASKFLOW_EVENT_LOOP: 'tokio' is not one of asyncio, uvloop" in done.stderr
    assert "Traceback" not in done.stderr
