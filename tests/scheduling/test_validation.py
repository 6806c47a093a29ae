"""Every bad schedule is refused with the field it is about (no servers needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskflow.errors import InvalidArgument
from taskflow.scheduling.files import ScheduleFileError, load_schedule_file, parse_schedules
from taskflow.scheduling.models import ConcurrencyPolicy, validate_schedule

TASK = {"queue": "jobs", "handler": "h"}


def check(**fields: Any) -> Any:
    raw: dict[str, Any] = {"namespace": "default", "name": "n", "cron": "* * * * *"}
    raw["target"] = TASK
    raw.update(fields)
    return validate_schedule(**raw)


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"cron": "61 * * * *"}, "schedule.cron", "'61 * * * *' is not a valid cron expression:"),
        ({"cron": ""}, "schedule.cron", "is required"),
        ({"cron": "0 0 31 2 *"}, "schedule.cron", "never matches a date"),
        ({"timezone": "Mars/Base"}, "schedule.timezone", "'Mars/Base' is not a known time zone"),
        ({"name": ""}, "schedule.name", "is required"),
        ({"name": "-bad-"}, "schedule.name", "is not a valid name"),
        ({"name": "x" * 200}, "schedule.name", "is not a valid name"),
        ({"namespace": "Team A"}, "schedule.namespace", "is not a namespace"),
        ({"concurrency_policy": "Skip"}, "schedule.concurrency_policy", "one of Allow, Forbid"),
        ({"starting_deadline_seconds": 0}, "schedule.starting_deadline_seconds", "between 1"),
        ({"starting_deadline_seconds": -5}, "schedule.starting_deadline_seconds", "between 1"),
        ({"kind": "job"}, "schedule.kind", "'job' is not something a schedule can fire"),
        ({"kind": "dag", "target": {"queue": "q", "steps": []}}, "schedule.dag.steps", "at least"),
        (
            {"kind": "dag", "target": {"queue": "q", "steps": [{"name": "a", "handler": "h"}] * 2}},
            "schedule.dag.steps[1].name",
            "duplicate step name",
        ),
        (
            {
                "kind": "dag",
                "target": {
                    "queue": "q",
                    "idempotency_key": "k",
                    "steps": [{"name": "a", "handler": "h"}],
                },
            },
            "schedule.dag.idempotency_key",
            "is set by the schedule",
        ),
        ({"owner": "a\x00b"}, "schedule.owner", "without NUL"),
        ({"target": None}, "schedule.task", "is required"),
        ({"target": ["a"]}, "schedule.task", "must be a mapping"),
        ({"target": {"handler": "h"}}, "schedule.task.queue", "Field required"),
        ({"target": {"queue": "jobs"}}, "schedule.task.handler", "Field required"),
        ({"target": {**TASK, "priority": 5000}}, "schedule.task.priority", "less than or equal"),
        ({"target": {**TASK, "max_retries": -1}}, "schedule.task.max_retries", "greater than"),
        ({"target": {**TASK, "timeout_seconds": -1}}, "schedule.task.timeout_seconds", ""),
        ({"target": {**TASK, "bogus": 1}}, "schedule.task.bogus", "Extra inputs"),
        (
            {"target": {**TASK, "idempotency_key": "k"}},
            "schedule.task.idempotency_key",
            "each tick",
        ),
        ({"target": {**TASK, "delay_seconds": 5}}, "schedule.task.delay_seconds", "at its tick"),
        (
            {"target": {**TASK, "run_at": "2030-01-01T00:00:00Z"}},
            "schedule.task.run_at",
            "at its tick",
        ),
        ({"target": {**TASK, "namespace": "other"}}, "schedule.task.namespace", "differs"),
        ({"target": {**TASK, "handler": "a\x00b"}}, "schedule.task.handler", "not a handler name"),
        ({"target": {**TASK, "payload": "\ud800"}}, "schedule.task.payload", "unpaired surrogate"),
        ({"target": {**TASK, "payload": float("nan")}}, "schedule.task.payload", "NaN"),
        (
            {"target": {**TASK, "concurrency_key": "k"}},
            "schedule.task",
            "concurrency_limit is required",
        ),
    ],
)
def test_invalid_schedules_name_the_field(fields: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(**fields)
    assert info.value.field == field
    assert problem in info.value.problem


def test_a_valid_schedule_is_normalized() -> None:
    spec = check(
        cron=" @daily ",
        timezone="Europe/Paris",
        concurrency_policy="forbid",
        target={**TASK, "payload": {"x": [1, 2]}, "priority": 3, "labels": {"team": "a"}},
    )
    assert spec.cron == "0 0 * * *"
    assert spec.concurrency_policy == ConcurrencyPolicy.FORBID
    assert spec.target == {
        "queue": "jobs",
        "handler": "h",
        "payload": {"x": [1, 2]},
        "priority": 3,
        "labels": {"team": "a"},
    }
    task = spec.task()
    assert task.namespace == "default" and task.priority == 3


FILE = """
schedules:
  - name: nightly
    cron: "0 3 * * *"
    timezone: Europe/Paris
    concurrency_policy: Forbid
    starting_deadline_seconds: 600
    task:
      queue: reports
      handler: build
      payload: {day: yesterday}
  - name: often
    namespace: team-b
    cron: "*/5 * * * *"
    suspend: true
    task: {queue: q, handler: h}
"""


def test_a_file_of_schedules() -> None:
    nightly, often = parse_schedules(FILE, namespace="dev", owner="file:/x.yaml")
    assert (nightly.namespace, nightly.name, nightly.timezone) == ("dev", "nightly", "Europe/Paris")
    assert nightly.starting_deadline_seconds == 600
    assert nightly.target["payload"] == {"day": "yesterday"}
    assert (often.namespace, often.suspend, often.owner) == ("team-b", True, "file:/x.yaml")
    assert parse_schedules("") == [] and parse_schedules("schedules: []") == []
    assert len(parse_schedules("- {name: a, cron: '@hourly', task: {queue: q, handler: h}}")) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedules: [", "not valid YAML: line 1 column 13"),
        ("- name: a\n  cron: */5 * * * *\n", "quote cron expressions"),
        ("jobs: []", "jobs: unknown key; the file holds 'schedules:'"),
        ("schedules: {a: 1}", "schedules: must be a list"),
        ("- 5", "schedules[0]: must be a mapping"),
        ("- {name: a, cron: '* * * * *'}", "schedules[0].task: give what each tick fires"),
        ("- {cron: '* * * * *', task: {}}", "schedules[0].name: is required"),
        ("- {name: a, cron: 5, task: {}}", "schedules[0].cron: must be a string, got 5"),
        ("- {name: a, cron: '@daily', suspend: 3, task: {}}", "schedules[0].suspend: must be true"),
        (
            "- {name: a, cron: '@daily', starting_deadline_seconds: true, task: {}}",
            "schedules[0].starting_deadline_seconds: must be an integer",
        ),
        ("- {name: a, cron: '@daily', crn: x, task: {}}", "schedules[0].crn: unknown key"),
        (
            "- {name: a, cron: '@daily', task: {queue: q, handler: h}}\n"
            "- {name: b, cron: '61 * * * *', task: {queue: q, handler: h}}",
            "schedules[1].cron: '61 * * * *' is not a valid cron expression",
        ),
        (
            "- {name: a, cron: '@daily', timezone: Mars/Base, task: {queue: q, handler: h}}",
            "schedules[0].timezone: 'Mars/Base' is not a known time zone",
        ),
        (
            "- {name: a, cron: '@daily', task: {queue: q, handler: h, timeout: 5}}",
            "schedules[0].task.timeout: Extra inputs are not permitted",
        ),
        (
            "- {name: a, cron: '@daily', task: {queue: q, handler: h}}\n"
            "- {name: a, cron: '@hourly', task: {queue: q, handler: h}}",
            "schedules[1].name: 'a' is also the name of schedules[0]",
        ),
    ],
)
def test_bad_files_name_the_place(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    with pytest.raises(ScheduleFileError) as info:
        load_schedule_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScheduleFileError, match="cannot read it"):
        load_schedule_file(tmp_path / "nope.yaml")
