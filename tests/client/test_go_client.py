"""The Go example client, built from the same proto, against the in-process fake server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .fake_server import FakeServer, running_fake_server


def _run(
    binary: Path, target: str, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TASKFLOW_API_ADDR", "TASKFLOW_API_TOKEN")
    }
    if token is not None:
        env["TASKFLOW_API_TOKEN"] = token
    return subprocess.run(
        [str(binary), "-addr", target, "-timeout", "30s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_go_client_submits_and_prints_the_result(go_client_binary: Path, fake: FakeServer) -> None:
    result = _run(
        go_client_binary,
        fake.target,
        "-queue",
        "emails",
        "-handler",
        "echo",
        "-payload",
        '{"to": "a@b.c", "n": [1, 2]}',
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["state"] == "succeeded"
    assert line["result"] == {"to": "a@b.c", "n": [1, 2]}
    task = fake.service.task(line["task_id"])
    assert (task.queue, task.handler) == ("emails", "echo")
    assert task.idempotency_key


def test_go_client_exits_1_when_the_task_fails(go_client_binary: Path, fake: FakeServer) -> None:
    result = _run(go_client_binary, fake.target, "-queue", "q", "-handler", "fail")
    assert result.returncode == 1
    line = json.loads(result.stdout)
    assert (line["state"], line["result"], line["error"]) == ("failed", None, "boom")


def test_go_client_sends_the_token(go_client_binary: Path) -> None:
    with running_fake_server(required_token="s3cret") as fake:
        result = _run(go_client_binary, fake.target, "-handler", "echo", token="s3cret")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state"] == "succeeded"
        refused = _run(go_client_binary, fake.target, "-handler", "echo", token="wrong")
        assert refused.returncode == 1
        assert "Unauthenticated" in refused.stderr


def test_go_client_rejects_a_payload_that_is_not_json(go_client_binary: Path) -> None:
    result = _run(go_client_binary, "127.0.0.1:1", "-handler", "echo", "-payload", "{nope")
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
