"""The API server (``taskflow api``, a real process) restarted twice during a steady stream of
submissions: once killed outright, once stopped with SIGTERM. Clients with default settings
ride it out: every submission returns, and PostgreSQL holds each task exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from taskflow.embedded import free_port
from taskflow.store import apply_migrations
from taskflow_client import Client, TaskRequest

WRITERS = 6
STEP = 300
"""Submissions accepted between two faults."""
DEADLINE = 90.0


class ApiProcess:
    """``taskflow api`` on fixed ports, restartable."""

    def __init__(self, redis_url: str, database_url: str, log: Path) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        self.env |= {"TASKFLOW_REDIS_URL": redis_url, "TASKFLOW_DATABASE_URL": database_url}
        self.log = log.open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        ports = ["--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "taskflow", "api", "--host", "127.0.0.1", *ports],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def end(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=DEADLINE)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)
        self.log.close()


@pytest.fixture
def api(redis_url: str, database_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    asyncio.run(apply_migrations(database_url))
    server = ApiProcess(redis_url, database_url, tmp_path / "api.log")
    server.start()
    try:
        yield server
    finally:
        server.close()


class Stream:
    """``WRITERS`` threads submitting one task or a batch of ten at a time until stopped."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.accepted: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write, args=(w,)) for w in range(WRITERS)]

    def _write(self, writer: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                if n % 4 == 0:
                    batch = [
                        TaskRequest("default", "noop", payload={"w": writer, "n": n, "i": i})
                        for i in range(10)
                    ]
                    self.accepted.extend(self.client.submit_many(batch))
                else:
                    key = f"w{writer}-{n}" if n % 3 == 0 else None
                    task_id = self.client.submit(
                        "default", "noop", {"w": writer, "n": n}, idempotency_key=key
                    )
                    self.accepted.append(task_id)
            except BaseException as exc:
                self.errors.append(exc)
                return

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=DEADLINE)

    def wait_for(self, count: int) -> None:
        end = time.monotonic() + DEADLINE
        while len(self.accepted) < count and not self.errors:
            if time.monotonic() > end:
                pytest.fail(f"{count} submissions not accepted within {DEADLINE:g}s")
            time.sleep(0.01)


def test_submissions_survive_api_restarts_exactly_once(api: ApiProcess, database_url: str) -> None:
    with Client(api.addr) as client:
        client.queues()  # the first server is up
        with Stream(client) as stream:
            stream.wait_for(STEP)
            api.end(signal.SIGKILL)
            api.start()
            stream.wait_for(len(stream.accepted) + STEP)
            api.end(signal.SIGTERM)
            api.start()
            stream.wait_for(len(stream.accepted) + STEP)
    assert stream.errors == []
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id::text FROM tasks").fetchall()
    stored = [row[0] for row in rows]
    assert len(stored) == len(set(stored))
    assert len(stream.accepted) == len(set(stream.accepted)), "one task id returned twice"
    assert sorted(stored) == sorted(stream.accepted), "tasks stored but never returned"
