"""The Go example client over mutual TLS against the real API server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from taskflow.api import ApiServer
from taskflow.api.tls import TlsConfig
from taskflow.engine import Engine
from taskflow.models import TaskState
from tests.api.conftest import QUEUE, Dispatch
from tests.security.certs import Authority


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_API_")}


async def test_go_client_over_mutual_tls(
    go_client_binary: Path, engine: Engine, tmp_path: Path
) -> None:
    ca, clients = Authority("server-ca"), Authority("client-ca")
    cert, key = ca.issue("api").write(tmp_path, "server")
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    (tmp_path / "clients.pem").write_bytes(clients.pem)
    ccert, ckey = clients.issue("go", server=False).write(tmp_path, "client")
    server = ApiServer(
        engine,
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        tls=TlsConfig(cert, key, tmp_path / "clients.pem"),
    )
    await server.start()
    dispatch = Dispatch(engine)
    try:
        base = [str(go_client_binary), "-addr", f"localhost:{server.grpc_port}"]
        task = ["-queue", QUEUE.name, "-handler", "work", "-timeout", "60s"]
        # Without a client certificate the handshake is refused.
        refused = await asyncio.to_thread(
            subprocess.run,
            [*base, "-ca", str(tmp_path / "ca.pem"), *task[:-2], "-timeout", "5s"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert refused.returncode != 0
        proc = subprocess.Popen(
            [*base, "-ca", str(tmp_path / "ca.pem"), "-cert", str(ccert), "-key", str(ckey), *task],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                tasks, _ = await engine.list_tasks(
                    namespace="default", queue=QUEUE.name, states=[], page_size=10, page_token=None
                )
                if tasks or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert [t.handler for t in tasks] == ["work"], proc.stderr
            await dispatch.start(tasks[0].id)
            await dispatch.finish(tasks[0].id, TaskState.SUCCEEDED, result={"ok": True})
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        line = json.loads(out)
        assert (line["state"], line["result"]) == ("succeeded", {"ok": True})
    finally:
        await dispatch.close()
        await server.stop(grace=1)
