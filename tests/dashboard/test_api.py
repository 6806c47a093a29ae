"""The dashboard's JSON API on the API server's HTTP port, against real tasks and a worker."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.models import WorkerStatus, utcnow, validate_submission
from taskflow.scheduling import ScheduleService
from taskflow.scheduling.models import validate_schedule
from taskflow.workflows.models import validate_dag
from taskflow.workflows.service import DagService
from taskflow_worker.runtime import Worker
from tests.dashboard.conftest import QUEUE, Get, until


async def submit(engine: Engine, handler: str, payload: Any = None, **fields: Any) -> str:
    spec = validate_submission(
        {"queue": fields.pop("queue", QUEUE.name), "handler": handler, "payload": payload, **fields}
    )
    (result,) = await engine.submit([spec])
    return result.task_id


async def state_of(get: Get, task_id: str) -> str:
    status, body = await get(f"/dashboard/api/tasks/{task_id}")
    assert status == 200, body
    return str(body["state"])


async def test_a_task_is_listed_and_shown_with_its_attempts_error_and_traceback(
    engine: Engine, get: Get, worker: Worker
) -> None:
    ok = await submit(engine, "add", {"a": 2, "b": 3})
    bad = await submit(engine, "fail", {"message": "card declined"})
    await until(lambda: _all_done(get, [ok, bad]))

    status, body = await get("/dashboard/api/tasks", queue=QUEUE.name)
    assert status == 200
    listed = {t["id"]: t for t in body["tasks"]}
    assert listed[ok]["state"] == "succeeded" and listed[bad]["state"] == "failed"
    assert listed[bad]["error"] == "PermanentError: card declined"
    assert "payload_json" not in listed[ok]  # the list stays light

    _, task = await get(f"/dashboard/api/tasks/{bad}")
    assert task["handler"] == "fail" and json.loads(task["payload_json"]) == {
        "message": "card declined"
    }
    assert task["error"] == "PermanentError: card declined"
    assert "PermanentError: card declined" in task["traceback"]
    (attempt,) = task["attempt_history"]
    assert attempt["outcome"] == "failed" and attempt["error"] == "PermanentError: card declined"
    assert attempt["seconds"] is not None and attempt["worker"]
    assert task["actions"] == {}  # read-only unless actions are turned on

    _, done = await get(f"/dashboard/api/tasks/{ok}")
    assert done["result_json"] == "5" and done["run_seconds"] is not None


async def _all_done(get: Get, ids: list[str]) -> bool:
    return all([await state_of(get, i) in ("succeeded", "failed") for i in ids])


async def test_filters_search_and_pages(engine: Engine, get: Get) -> None:
    ids = [await submit(engine, "add", {"a": i, "b": 0}) for i in range(5)]
    other = await submit(engine, "noop", queue="other")

    _, body = await get("/dashboard/api/tasks", handler="noop")
    assert [t["id"] for t in body["tasks"]] == [other]
    _, body = await get("/dashboard/api/tasks", queue=QUEUE.name, state="queued")
    assert [t["id"] for t in body["tasks"]] == ids[::-1]
    _, body = await get("/dashboard/api/tasks", state="running,failed")
    assert body["tasks"] == []

    first = await get("/dashboard/api/tasks", queue=QUEUE.name, limit="2")
    assert [t["id"] for t in first[1]["tasks"]] == ids[:2:-1][:2]
    second = await get("/dashboard/api/tasks", queue=QUEUE.name, limit="2", before=first[1]["next"])
    assert [t["id"] for t in second[1]["tasks"]] == [ids[2], ids[1]]

    _, found = await get("/dashboard/api/tasks", id=ids[3])
    assert [t["id"] for t in found["tasks"]] == [ids[3]]
    _, by_prefix = await get("/dashboard/api/tasks", id=other.replace("-", "")[:20])
    assert [t["id"] for t in by_prefix["tasks"]] == [other]

    _, handlers = await get("/dashboard/api/handlers")
    assert handlers["handlers"] == ["add", "noop"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"state": "sleeping"}, "state", "unknown state 'sleeping'"),
        ({"limit": "5000"}, "limit", "must be between 1 and 200, got 5000"),
        ({"id": "xyz"}, "id", "is not a task id or the first 8 or more hex digits of one"),
        ({"queue": "bad queue"}, "queue", "'bad queue' is not a name"),
        ({"before": "nope"}, "before", "'nope' is not a task id"),
    ],
)
async def test_bad_filters_are_refused_naming_the_field(
    get: Get, query: dict[str, str], field: str, message: str
) -> None:
    status, body = await get("/dashboard/api/tasks", **query)
    assert status == 400
    assert body["field"] == field and message in body["error"]


async def test_unknown_task_and_api_are_404(get: Get) -> None:
    status, body = await get("/dashboard/api/tasks/0190a4c2-0000-7000-8000-000000000000")
    assert status == 404 and "not found" in body["error"]
    status, body = await get("/dashboard/api/nothing-here")
    assert status == 404 and "no such dashboard API" in body["error"]


async def test_large_fields_are_cut_short(engine: Engine, get: Get) -> None:
    task_id = await submit(engine, "noop", {"blob": "x" * 100_000})
    _, task = await get(f"/dashboard/api/tasks/{task_id}")
    assert task["payload_truncated"] is True
    assert len(task["payload_json"]) == 64 * 1024


async def test_queues_carry_counts_and_a_history_of_throughput_and_failures(
    engine: Engine, api_server: ApiServer, get: Get, worker: Worker
) -> None:
    ids = [await submit(engine, "add", {"a": 1, "b": 1}) for _ in range(4)]
    ids.append(await submit(engine, "fail"))
    await until(lambda: _all_done(get, ids))

    async def history_shows_it() -> Any:
        _, body = await get("/dashboard/api/queues")
        points = body["history"].get(QUEUE.qualified, [])
        ended = sum(p["throughput"] for p in points)
        failing = [p for p in points if p["failure_rate"] > 0]
        return body if ended > 0 and failing else None

    body = await until(history_shows_it)
    (queue,) = [q for q in body["queues"] if q["queue"] == QUEUE.name]
    assert queue["succeeded"] == 4 and queue["failed"] == 1 and queue["dead_letters"] == 1
    point = body["history"][QUEUE.qualified][-1]
    assert set(point) == {
        "at",
        "backlog",
        "ready",
        "running",
        "scheduled",
        "dead_letters",
        "throughput",
        "failure_rate",
    }
    assert body["sample_seconds"] == pytest.approx(0.1)


async def test_a_dag_run_lists_and_shows_its_steps_and_edges(
    engine: Engine, get: Get, worker: Worker
) -> None:
    dag = validate_dag(
        {
            "queue": QUEUE.name,
            "name": "diamond",
            "steps": [
                {"name": "a", "handler": "sum_parents", "payload": 1},
                {"name": "b", "handler": "sum_parents", "depends_on": ["a"]},
                {"name": "c", "handler": "fail", "depends_on": ["a"]},
                {"name": "d", "handler": "sum_parents", "depends_on": ["b", "c"]},
            ],
        }
    )
    run_id, _ = await DagService(engine).submit(dag)

    async def finished() -> Any:
        _, run = await get(f"/dashboard/api/dags/{run_id}")
        return run if run["state"] != "running" else None

    run = await until(finished)
    assert run["state"] == "failed" and run["name"] == "diamond"
    states = {s["name"]: s["state"] for s in run["steps"]}
    assert states["a"] == "succeeded" and states["c"] == "failed"
    assert states["d"] == "skipped"
    assert sorted(run["edges"]) == [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]]
    (c,) = [s for s in run["steps"] if s["name"] == "c"]
    assert c["error"] and c["task_id"]

    _, listed = await get("/dashboard/api/dags")
    (summary,) = listed["runs"]
    assert summary["id"] == run_id and summary["step_counts"]["failed"] == 1
    status, body = await get("/dashboard/api/dags", state="paused")
    assert status == 400 and body["field"] == "state"


async def test_workers_alive_are_shown_and_stale_ones_left_out(engine: Engine, get: Get) -> None:
    now = utcnow()

    def status(name: str, seen_ago: float) -> WorkerStatus:
        return WorkerStatus(
            name=name,
            queues=(QUEUE.qualified,),
            concurrency=10,
            in_flight=3,
            abandoned=0,
            claimed=7,
            finished=4,
            started_at=now - timedelta(minutes=5),
            seen_at=now - timedelta(seconds=seen_ago),
        )

    await engine.dispatcher.announce_worker(status("alive-1", 1))
    await engine.dispatcher.announce_worker(status("gone-1", engine.settings.lease_seconds + 60))
    _, body = await get("/dashboard/api/workers")
    assert [w["name"] for w in body["workers"]] == ["alive-1"]
    assert body["workers"][0]["in_flight"] == 3
    assert body["stale_hidden"] == 1
    assert len(await engine.workers()) == 2  # reading prunes nothing


async def test_schedules_show_their_next_fire(engine: Engine, get: Get) -> None:
    spec = validate_schedule(
        namespace="default",
        name="nightly",
        cron="0 3 * * *",
        timezone="Europe/Paris",
        target={"queue": QUEUE.name, "handler": "add"},
    )
    await ScheduleService(engine).put(spec)
    _, body = await get("/dashboard/api/schedules")
    (s,) = body["schedules"]
    assert (s["name"], s["cron"], s["timezone"], s["handler"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
        "add",
    )
    assert s["next_fire_at"] is not None and s["last_fire_at"] is None


async def test_the_page_is_served_from_the_package(http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200 and str(response.url).endswith("/dashboard/")
        html = await response.text()
    assert "<title>TaskFlow</title>" in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with http.get("/dashboard/static/app.js") as response:
        assert response.status == 200


async def test_actions_are_off_by_default(engine: Engine, http: aiohttp.ClientSession) -> None:
    task_id = await submit(engine, "noop")
    async with http.post(f"/dashboard/api/tasks/{task_id}/cancel", json={}) as response:
        assert response.status == 403
        assert "TASKFLOW_DASHBOARD_ACTIONS=1" in (await response.json())["error"]
    assert (await engine.get(task_id)).state == "queued"


async def test_with_a_token_the_api_needs_it_and_actions_go_through_it(
    settings: Settings, dashboard_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskflow.store import apply_migrations

    monkeypatch.setenv("TASKFLOW_DASHBOARD_ACTIONS", "1")
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(replace(settings, api_token="s3cret"))
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.http_port}/dashboard/api"
        task_id = await submit(engine, "sleep", {"seconds": 60})
        good = {"Authorization": "Bearer s3cret"}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/config") as r:
                assert (await r.json())["auth_required"] is True  # the page learns to ask
            async with s.get(f"{base}/tasks") as r:
                assert r.status == 401 and "Authorization: Bearer" in (await r.json())["error"]
            async with s.get(f"{base}/tasks", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 401 and (await r.json())["error"] == "invalid token"
            async with s.get(f"{base}/tasks/{task_id}", headers=good) as r:
                assert (await r.json())["actions"] == {"cancel": True, "replay": False}
            async with s.post(f"{base}/tasks/{task_id}/cancel", data="x", headers=good) as r:
                assert r.status == 400 and (await r.json())["field"] == "Content-Type"
            async with s.post(f"{base}/tasks/{task_id}/cancel", json={}) as r:
                assert r.status == 401
            async with s.post(f"{base}/tasks/{task_id}/cancel", json={}, headers=good) as r:
                assert r.status == 200 and (await r.json())["state"] == "cancelled"
        assert (await engine.get(task_id)).state == "cancelled"
    finally:
        await server.stop(grace=1)
        await engine.close()


async def test_scoped_tokens_see_only_what_their_roles_and_namespaces_allow(
    settings: Settings, dashboard_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from taskflow.store import apply_migrations

    monkeypatch.setenv("TASKFLOW_DASHBOARD_ACTIONS", "1")
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n"
        "  - {name: tenant, token: tenant-token-0123456789, namespaces: [default],"
        " roles: [admin]}\n"
        "  - {name: viewer, token: viewer-token-0123456789, namespaces: '*', roles: [read]}\n"
        "  - {name: ops, token: ops-token-0123456789ab, namespaces: '*', roles: [admin]}\n"
    )
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(replace(settings, api_tokens_file=str(tokens)))
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.http_port}/dashboard/api"
        task_id = await submit(engine, "sleep", {"seconds": 60})

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/config") as r:
                assert (await r.json())["auth_required"] is True
            # a tenant's token would show other tenants' queues: refused, whatever its roles
            async with s.get(f"{base}/tasks", headers=bearer("tenant-token-0123456789")) as r:
                assert r.status == 403 and "limited to some namespaces" in (await r.json())["error"]
            async with s.get(
                f"{base}/tasks/{task_id}", headers=bearer("viewer-token-0123456789")
            ) as r:
                assert r.status == 200
            cancel = f"{base}/tasks/{task_id}/cancel"
            async with s.post(cancel, json={}, headers=bearer("viewer-token-0123456789")) as r:
                assert r.status == 403 and "lacks the role 'submit'" in (await r.json())["error"]
            assert (await engine.get(task_id)).state == "queued"
            async with s.post(cancel, json={}, headers=bearer("ops-token-0123456789ab")) as r:
                assert r.status == 200
        assert (await engine.get(task_id)).state == "cancelled"
    finally:
        await server.stop(grace=1)
        await engine.close()


def test_a_queue_that_appears_later_starts_from_zero_and_one_that_returns_does_not() -> None:
    from taskflow.dashboard.samples import QueueSampler
    from taskflow.models import QueueStats

    readings: list[list[QueueStats]] = [
        [QueueStats("default", "a", succeeded=100)],
        [QueueStats("default", "a", succeeded=110), QueueStats("default", "b", failed=2)],
        [QueueStats("default", "b", failed=2)],  # a missing (Redis rebuilt), b unchanged
        [QueueStats("default", "a", succeeded=500), QueueStats("default", "b", failed=2)],
    ]
    sampler = QueueSampler(lambda: _next(readings), interval=1)
    for at in range(4):
        asyncio.run(sampler.sample(now=float(at)))
    history = sampler.history()
    assert [p.throughput for p in history["default/a"]] == [10.0, 0.0]  # no spike from 110 to 500
    assert [p.failure_rate for p in history["default/b"]] == [1.0, 0.0, 0.0]


async def _next(readings: list[Any]) -> Any:
    return readings.pop(0)


async def test_a_large_run_lists_a_bounded_number_of_steps(engine: Engine) -> None:
    from taskflow.dashboard.views import run_view

    dag = validate_dag(
        {"queue": QUEUE.name, "steps": [{"name": f"s{i}", "handler": "noop"} for i in range(30)]}
    )
    run_id, _ = await DagService(engine).submit(dag)
    run = await DagService(engine).get(run_id)
    view = run_view(run, limit=10)
    assert len(view["steps"]) == 10 and view["steps_truncated"] is True
    assert view["steps_total"] == 30
    assert run_view(run)["steps_truncated"] is False
