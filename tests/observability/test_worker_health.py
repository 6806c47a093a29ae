"""The worker's health endpoint (``taskflow_worker.health``): its paths, its limits, several
clients at once, and a worker process that never imports aiohttp."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from taskflow.bench.processes import terminate
from taskflow.embedded import free_port
from taskflow.store import apply_migrations
from taskflow_worker.health import MAX_REQUEST_BYTES, HealthServer

DEADLINE = 60.0


def fake_worker(draining: bool = False) -> Any:
    return SimpleNamespace(
        config=SimpleNamespace(name="w-1", concurrency=4),
        inflight={"a": object()},
        abandoned=0,
        claimed_total=7,
        finished_total=6,
        draining=draining,
    )


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    s = HealthServer(fake_worker(), "127.0.0.1", 0)
    await s.start()
    yield s
    await s.close()


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n\r\n".encode()


async def test_healthz_readyz_and_metrics(server: HealthServer) -> None:
    status, headers, body = await exchange(server.port, get("/healthz"))
    assert status == 200 and headers["connection"] == "close"
    assert headers["content-type"].startswith("application/json")
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "worker": "w-1",
        "in_flight": 1,
        "abandoned": 0,
        "claimed": 7,
        "finished": 6,
        "draining": False,
    }
    status, _, body = await exchange(server.port, get("/readyz?verbose=1"))
    assert (status, json.loads(body)) == (200, {"draining": False})
    status, headers, body = await exchange(server.port, get("/metrics"))
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"taskflow_worker_concurrency 4.0" in body
    assert b"taskflow_worker_claims_total 7.0" in body


async def test_readyz_is_503_while_draining() -> None:
    s = HealthServer(fake_worker(draining=True), "127.0.0.1", 0)
    await s.start()
    try:
        status, _, body = await exchange(s.port, get("/readyz"))
        assert (status, json.loads(body)) == (503, {"draining": True})
        status, _, _ = await exchange(s.port, get("/healthz"))
        assert status == 200  # alive while draining
    finally:
        await s.close()


async def test_head_has_no_body(server: HealthServer) -> None:
    status, headers, body = await exchange(server.port, get("/healthz", "HEAD"))
    assert status == 200 and int(headers["content-length"]) > 0 and body == b""


async def test_unknown_paths_methods_and_bad_requests(server: HealthServer) -> None:
    assert (await exchange(server.port, get("/nope")))[0] == 404
    status, headers, _ = await exchange(server.port, get("/healthz", "POST"))
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert (await exchange(server.port, b"garbage\r\n\r\n"))[0] == 400
    assert (await exchange(server.port, b"GET /healthz SPDY/3\r\n\r\n"))[0] == 400
    assert (await exchange(server.port, b"GET /\xff\xfe HTTP/1.1\r\n\r\n"))[0] == 400


async def test_an_oversize_request_is_refused(server: HealthServer) -> None:
    big = b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * (MAX_REQUEST_BYTES * 2) + b"\r\n\r\n"
    status, _, _ = await exchange(server.port, big)
    assert status == 431
    # and the server still answers
    assert (await exchange(server.port, get("/healthz")))[0] == 200


async def test_a_client_that_never_finishes_does_not_block_others(
    server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskflow_worker.health.READ_TIMEOUT", 0.3)
    _, slow = await asyncio.open_connection("127.0.0.1", server.port)
    slow.write(b"GET /healthz HTTP/1.1\r\n")  # never ends its headers
    await slow.drain()
    results = await asyncio.gather(
        *(exchange(server.port, get(p)) for p in ["/healthz", "/readyz", "/metrics"] * 10)
    )
    assert [r[0] for r in results] == [200] * 30
    slow.close()


async def test_a_client_gone_before_its_request_ended(server: HealthServer) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", server.port)
    w.write(b"GET /hea")
    await w.drain()
    w.close()
    await asyncio.sleep(0.05)
    assert (await exchange(server.port, get("/healthz")))[0] == 200


WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from taskflow.config import Settings
    from taskflow.keys import QueueRef
    from taskflow_worker.router import Router
    from taskflow_worker.runtime import WorkerConfig
    from taskflow_worker.serve import serve_worker

    import taskflow.cli  # what `taskflow worker` loads before the worker package
    import taskflow_worker.command

    async def main(port):
        stop = asyncio.Event()
        config = WorkerConfig(queues=[QueueRef("default", "health")], concurrency=2)
        run = asyncio.create_task(serve_worker(Router(), Settings.from_env(), config,
                                               health_port=port, health_host="127.0.0.1",
                                               stop=stop))
        for _ in range(200):
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        w.write(b"GET /healthz HTTP/1.1\\r\\n\\r\\n")
        answer = await r.read()
        stop.set()
        await run
        loaded = sorted(m for m in sys.modules if m == "aiohttp" or m.startswith("aiohttp."))
        print(json.dumps({"status": answer.split()[1].decode(), "aiohttp": loaded}))

    asyncio.run(main(int(sys.argv[1])))
    """
)


def test_a_worker_process_never_imports_aiohttp(redis_url: str, database_url: str) -> None:
    asyncio.run(apply_migrations(database_url))
    env = {**os.environ, "TASKFLOW_REDIS_URL": redis_url, "TASKFLOW_DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"status": "200", "aiohttp": []}


async def test_the_worker_command_serves_health_on_the_health_host_only(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    await apply_migrations(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env |= {"TASKFLOW_REDIS_URL": redis_url, "TASKFLOW_DATABASE_URL": database_url}
    port = free_port()
    log = tmp_path / "worker.log"
    argv = ["--app", "taskflow_worker.examples:router", "--health-port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskflow", "worker", *argv, "--health-host", "127.0.0.1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        end = time.monotonic() + DEADLINE
        while True:
            assert proc.poll() is None, f"the worker exited:\n{log.read_text()}"
            try:
                status, _, body = await exchange(port, get("/healthz"))
                break
            except OSError:
                assert time.monotonic() < end, f"no health endpoint:\n{log.read_text()}"
                await asyncio.sleep(0.05)
        assert status == 200 and json.loads(body)["draining"] is False
        # Another loopback address reaches a socket bound to every interface, not this one.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.2", port)
    finally:
        terminate([proc], grace=DEADLINE)
