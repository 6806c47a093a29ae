"""How a DagRun's spec becomes an engine run, and how the engine's run reads as its status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskflow.errors import InvalidArgument
from taskflow.store.dags import RunProgress, StepProgress
from taskflow.workflows.models import validate_dag
from taskflow_operator.crd.dagrun import DagRunSpec
from taskflow_operator.reconcile.dagruns import (
    dag_fields,
    idempotency_key,
    mirrored_status,
    spec_field,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def spec(**overrides: object) -> DagRunSpec:
    raw = {
        "queue": "work",
        "steps": [
            {"name": "a", "handler": "collect"},
            {"name": "b", "handler": "collect", "dependsOn": ["a"], "maxRetries": 2},
            {"name": "c", "handler": "collect", "dependsOn": ["a"], "queue": "gpu"},
        ],
        **overrides,
    }
    return DagRunSpec.model_validate(raw)


def test_a_spec_is_a_run_keyed_on_the_uid() -> None:
    dag = validate_dag(dag_fields("ns1", "uid-1", "diamond", spec()), path="spec")
    assert dag.idempotency_key == idempotency_key("uid-1")
    assert dag.namespace == "ns1" and dag.name == "diamond"
    by_name = {s.name: s for s in dag.steps}
    assert by_name["b"].depends_on == ("a",) and by_name["b"].task.max_retries == 2
    assert by_name["c"].task.queue == "gpu" and by_name["a"].task.queue == "work"


def test_graph_problems_name_the_field_as_the_resource_spells_it() -> None:
    bad = spec(
        steps=[
            {"name": "a", "handler": "h", "dependsOn": ["b"]},
            {"name": "b", "handler": "h", "dependsOn": ["a"]},
        ]
    )
    with pytest.raises(InvalidArgument) as cycle:
        validate_dag(dag_fields("ns", "u", "n", bad), path="spec")
    assert spec_field(cycle.value.field) == "spec.steps"
    assert "a -> b -> a" in cycle.value.problem
    unknown = spec(steps=[{"name": "a", "handler": "h", "dependsOn": ["nope"]}])
    with pytest.raises(InvalidArgument) as missing:
        validate_dag(dag_fields("ns", "u", "n", unknown), path="spec")
    assert spec_field(missing.value.field) == "spec.steps[0].dependsOn[0]"
    assert spec_field("spec.steps[3].payload_json") == "spec.steps[3].payload"
    assert spec_field("spec.failure_policy") == "spec.failurePolicy"


def step(name: str, state: str, attempts: int = 0, error: str | None = None) -> StepProgress:
    started = T0 if attempts else None
    finished = T0 if state in ("succeeded", "failed", "cancelled", "skipped") else None
    return StepProgress(name, f"id-{name}", state, attempts, started, finished, error)


def test_a_failed_run_lists_failed_and_skipped_steps() -> None:
    run = RunProgress(
        "run-1",
        "failed",
        T0,
        T0,
        (
            step("a", "succeeded", 1),
            step("b", "failed", 3, "boom"),
            step("c", "skipped"),
            step("d", "skipped"),
        ),
    )
    status = mirrored_status(run, {})
    assert status["phase"] == "Failed" and status["runId"] == "run-1"
    assert status["progress"] == "4/4"
    assert status["counts"]["succeeded"] == 1 and status["counts"]["failed"] == 1
    assert status["counts"]["skipped"] == 2
    assert status["failedSteps"] == ["b"] and status["skippedSteps"] == ["c", "d"]
    assert [s["phase"] for s in status["steps"]] == ["Succeeded", "Failed", "Skipped", "Skipped"]
    assert status["steps"][1]["error"] == "boom" and status["steps"][1]["attempts"] == 3
    assert status["completionTime"] == "2026-01-01T12:00:00Z"
    finished = next(c for c in status["conditions"] if c["type"] == "Finished")
    assert (finished["status"], finished["reason"]) == ("True", "Failed")
    assert "failed: b" in finished["message"]


def test_a_running_run_counts_what_is_left() -> None:
    run = RunProgress(
        "run-2", "running", T0, None, (step("a", "succeeded", 1), step("b", "running", 1))
    )
    status = mirrored_status(run, {})
    assert status["phase"] == "Running" and status["progress"] == "1/2"
    assert status["counts"]["running"] == 1 and status["completionTime"] is None
