"""The dashboard's actions (on with ``TASKFLOW_DASHBOARD_ACTIONS=1``) and its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from taskflow.api import ApiServer
from taskflow.cli import main
from taskflow.dashboard import DashboardSettings
from taskflow.engine import Engine
from taskflow.models import validate_submission
from taskflow.workflows.models import validate_dag
from taskflow.workflows.service import DagService
from taskflow_worker.runtime import Worker
from tests.dashboard.conftest import QUEUE, until


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFLOW_DASHBOARD_SAMPLE_SECONDS", "0.1")
    monkeypatch.setenv("TASKFLOW_DASHBOARD_ACTIONS", "1")


@pytest.fixture
async def post(api_server: ApiServer) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{api_server.http_port}") as session:

        async def call(path: str) -> tuple[int, Any]:
            async with session.post(f"/dashboard/api/{path}", json={}) as response:
                return response.status, await response.json()

        yield call


async def test_a_failed_task_is_replayed(engine: Engine, post: Any, worker: Worker) -> None:
    spec = validate_submission({"queue": QUEUE.name, "handler": "fail", "payload": {}})
    (sub,) = await engine.submit([spec])

    async def failed() -> bool:
        return (await engine.get(sub.task_id)).state == "failed"

    await until(failed)
    status, body = await post(f"tasks/{sub.task_id}/replay")
    assert (status, body) == (200, {"replayed": [sub.task_id]})

    async def failed_again() -> bool:
        task = await engine.get(sub.task_id, with_attempts=True)
        return task.state == "failed" and len(task.attempt_history) == 2

    await until(failed_again)
    status, body = await post(f"tasks/{sub.task_id}/cancel")
    assert (status, body["state"]) == (200, "failed")  # already ended: nothing to cancel


async def test_replay_refuses_a_task_that_did_not_fail(engine: Engine, post: Any) -> None:
    spec = validate_submission({"queue": QUEUE.name, "handler": "noop"})
    (sub,) = await engine.submit([spec])
    status, body = await post(f"tasks/{sub.task_id}/replay")
    assert status == 400 and body["field"] == "task_id" and "is queued, not failed" in body["error"]


async def test_a_run_is_cancelled_then_retried(engine: Engine, post: Any) -> None:
    dag = validate_dag(
        {"queue": QUEUE.name, "steps": [{"name": "a", "handler": "noop"}]}  # no worker: waits
    )
    run_id, _ = await DagService(engine).submit(dag)
    status, body = await post(f"dags/{run_id}/cancel")
    assert (status, body["state"]) == (200, "cancelled")
    status, body = await post(f"dags/{run_id}/retry")
    assert (status, body["state"]) == (200, "running")
    status, body = await post(f"dags/{run_id}/retry")
    assert status == 400 and "still running" in body["error"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TASKFLOW_DASHBOARD_ACTIONS": "maybe"}, "expected 1 or 0, got 'maybe'"),
        ({"TASKFLOW_DASHBOARD_SAMPLE_SECONDS": "x"}, "expected a number of seconds, got 'x'"),
        ({"TASKFLOW_DASHBOARD_SAMPLE_SECONDS": "0"}, "must be between 0.05 and 3600, got 0"),
    ],
)
def test_bad_dashboard_settings_stop_the_server_before_it_starts(
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=message):
        DashboardSettings.from_env()
    assert main(["api"]) == 2
    (name,) = env
    assert capsys.readouterr().err.strip() == f"taskflow api: {name}: {message}"
