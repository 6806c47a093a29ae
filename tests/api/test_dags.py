"""DAG runs through the gRPC API and ``taskflow dag``, against a real server and worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig
from tests.api.conftest import EOF, QUEUE, rpc_error
from tests.api.test_schedules_cli import Cli

DIAMOND = """
name: diamond
queue: jobs
steps:
  - {name: a, handler: sum_parents, payload: 1}
  - {name: b, handler: sum_parents, payload: 10, depends_on: [a]}
  - {name: c, handler: sum_parents, payload: 100, depends_on: [a]}
  - {name: d, handler: sum_parents, depends_on: [b, c]}
"""


@pytest.fixture
async def worker(settings: Settings, api_server: ApiServer) -> AsyncIterator[Worker]:
    stop = asyncio.Event()
    w = Worker(router, settings, WorkerConfig(queues=[QUEUE], concurrency=4))
    task = asyncio.create_task(w.run(stop))
    yield w
    stop.set()
    await task


@pytest.fixture
def cli(api_server: ApiServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(api_server, capsys)


def step(name: str, *parents: str, handler: str = "sum_parents", payload: str = "1") -> Any:
    return pb.DagStep(
        name=name,
        depends_on=list(parents),
        task=pb.TaskSpec(handler=handler, payload_json=payload),
    )


async def test_submit_watch_and_read_a_run(grpc_stub: Any, worker: Worker) -> None:
    dag = pb.DagSpec(queue=QUEUE.name, steps=[step("a"), step("b", "a"), step("c", "a", "b")])
    submitted = await grpc_stub.SubmitDag(pb.SubmitDagRequest(dag=dag))
    assert submitted.created
    states = []
    stream = grpc_stub.WatchDagRun(pb.WatchDagRunRequest(run_id=submitted.run_id), timeout=30)
    while (msg := await stream.read()) != EOF:
        states.append(msg.state)
    assert states[-1] == "succeeded" and set(states) <= {"running", "succeeded"}
    run = await grpc_stub.GetDagRun(
        pb.GetDagRunRequest(run_id=submitted.run_id, include_results=True)
    )
    assert [(s.name, s.state, list(s.depends_on)) for s in run.steps] == [
        ("a", "succeeded", []),
        ("b", "succeeded", ["a"]),
        ("c", "succeeded", ["a", "b"]),
    ]
    assert json.loads(run.steps[2].result_json) == 1 + (1 + 1) + 1
    assert run.steps[0].attempt_history[0].outcome == "succeeded"
    assert dict(run.step_counts) == {"succeeded": 3}
    again = await grpc_stub.SubmitDag(
        pb.SubmitDagRequest(
            dag=pb.DagSpec(queue=QUEUE.name, idempotency_key="k", steps=[step("x")])
        )
    )
    same = await grpc_stub.SubmitDag(
        pb.SubmitDagRequest(
            dag=pb.DagSpec(queue=QUEUE.name, idempotency_key="k", steps=[step("x")])
        )
    )
    assert (same.run_id, same.created) == (again.run_id, False)
    listed = await grpc_stub.ListDagRuns(pb.ListDagRunsRequest(page_size=1))
    assert len(listed.runs) == 1 and listed.next_page_token and not listed.runs[0].steps


@pytest.mark.parametrize(
    ("steps", "details"),
    [
        ([], "dag.steps: a run needs at least one step"),
        ([step("a", "zz")], "dag.steps[0].depends_on[0]: unknown step 'zz'"),
        ([step("a", "b"), step("b", "a")], "dag.steps: the steps form a cycle: a -> b -> a"),
        ([step("a"), step("a")], "dag.steps[1].name: duplicate step name 'a' (also steps[0])"),
        ([step("a", payload="{nope")], "dag.steps[0].payload_json: is not valid JSON"),
        ([step("a", handler="")], "dag.steps[0].handler: "),
    ],
)
async def test_bad_runs_are_refused_naming_the_field(
    grpc_stub: Any, steps: list[Any], details: str
) -> None:
    err = await rpc_error(
        grpc_stub.SubmitDag(pb.SubmitDagRequest(dag=pb.DagSpec(queue=QUEUE.name, steps=steps)))
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith(details), err.details


async def test_a_step_may_not_set_its_own_namespace_or_delay(grpc_stub: Any) -> None:
    bad = pb.DagStep(name="a", task=pb.TaskSpec(handler="h", namespace="other"))
    err = await rpc_error(
        grpc_stub.SubmitDag(pb.SubmitDagRequest(dag=pb.DagSpec(queue=QUEUE.name, steps=[bad])))
    )
    assert err.details == "dag.steps[0].task.namespace: a step's namespace is its run's"
    late = pb.DagStep(name="a", task=pb.TaskSpec(handler="h", delay_seconds=5))
    err = await rpc_error(
        grpc_stub.SubmitDag(pb.SubmitDagRequest(dag=pb.DagSpec(queue=QUEUE.name, steps=[late])))
    )
    assert err.details.startswith("dag.steps[0].delay_seconds: a step runs as soon as")


async def test_unknown_runs_and_bad_ids(grpc_stub: Any) -> None:
    missing = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    err = await rpc_error(grpc_stub.GetDagRun(pb.GetDagRunRequest(run_id=missing)))
    assert err.code == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(grpc_stub.CancelDagRun(pb.CancelDagRunRequest(run_id="bad")))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.details.startswith("run_id:")
    err = await rpc_error(grpc_stub.ListDagRuns(pb.ListDagRunsRequest(states=["done"])))
    assert err.details.startswith("states[0]: unknown run state 'done'")


async def test_taskflow_dag_submit_wait_status_and_list(
    cli: Cli, worker: Worker, tmp_path: Path
) -> None:
    path = tmp_path / "diamond.yaml"
    path.write_text(DIAMOND)
    code, out, err = await cli("dag", "submit", str(path), "--wait")
    assert code == 0, err
    assert "state     succeeded" in out
    assert "4 succeeded" in out
    for name in "abcd":
        assert f"\n{name} " in out or out.startswith(f"{name} ")
    run_id = err.split("submitted run ", 1)[1].split()[0]
    code, out, _ = await cli("dag", "status", run_id, "--json")
    run = json.loads(out)
    assert run["state"] == "succeeded"
    assert run["step_info"]["d"]["result"] == (1 + 10) + (1 + 100)
    code, out, _ = await cli("dag", "list")
    assert code == 0 and run_id in out and "diamond" in out


async def test_taskflow_dag_reports_bad_files_and_refusals(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("queue: jobs\nsteps:\n  - {name: a, handler: h, depends_on: [a]}\n")
    code, _, err = await cli("dag", "submit", str(path))
    assert code != 0
    assert "dag.steps[0].depends_on[0]: step 'a' cannot depend on itself" in err
    path.write_text("queue: jobs\nsteps:\n  - {name: a, handler: h, colour: red}\n")
    code, _, err = await cli("dag", "submit", str(path))
    assert code == 2 and "steps[0].colour: unknown key" in err
    code, _, err = await cli("dag", "submit", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err
    code, _, err = await cli("dag", "status")
    assert code == 2 and "ID: required" in err


async def test_a_dag_schedule_through_the_client(api_server: ApiServer) -> None:
    from taskflow_client import AsyncClient, Step

    async with AsyncClient(f"127.0.0.1:{api_server.grpc_port}") as client:
        put = await client.put_schedule(
            "etl",
            "0 3 * * *",
            dag={
                "queue": QUEUE.name,
                "failure_policy": "continue",
                "steps": [Step("a", "h", {"x": 1}), Step("b", "h", depends_on=["a"])],
            },
            concurrency_policy="Forbid",
        )
        assert put.task is None and put.dag is not None
        got = await client.get_schedule("etl")
        assert got.dag is not None
        assert got.dag["queue"] == QUEUE.name and got.dag["failure_policy"] == "continue"
        assert [(s.name, s.payload, tuple(s.depends_on)) for s in got.dag["steps"]] == [
            ("a", {"x": 1}, ()),
            ("b", None, ("a",)),
        ]
        with pytest.raises(Exception, match=r"schedule.dag.steps\[1\].depends_on\[0\]"):
            await client.put_schedule(
                "bad",
                "0 3 * * *",
                dag={
                    "queue": QUEUE.name,
                    "steps": [Step("a", "h"), Step("b", "h", depends_on=["z"])],
                },
            )
