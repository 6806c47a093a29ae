"""YAML files of schedules, for ``taskflow dev --schedules FILE`` and ``taskflow schedules
apply FILE``::

    schedules:
      - name: nightly-report
        cron: "0 3 * * *"            # quote it: a leading * means something else in YAML
        timezone: Europe/Paris       # default UTC
        concurrency_policy: Forbid   # Allow (default), Forbid or Replace
        starting_deadline_seconds: 600
        suspend: false
        task:                        # the fields of a submission, as the engine names them
          queue: reports
          handler: build_report
          payload: {"day": "yesterday"}
          priority: 5
          max_retries: 2
          timeout_seconds: 900
      - name: nightly-etl
        cron: "30 2 * * *"
        dag:                         # or a whole DAG run (as taskflow dag submit files have it)
          queue: etl
          failure_policy: fail_fast
          steps:
            - {name: extract, handler: extract}
            - {name: load, handler: load, depends_on: [extract]}

A bare list of schedules is accepted too. Every schedule is checked before any is used; an
error names the file, the schedule and the field (``schedules[1].cron: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from taskflow.errors import InvalidArgument
from taskflow.scheduling.models import ScheduleSpec, validate_schedule

#: The keys of one schedule in a file, and the type each must have.
_KEYS: dict[str, type] = {
    "name": str,
    "namespace": str,
    "cron": str,
    "timezone": str,
    "concurrency_policy": str,
    "suspend": bool,
    "starting_deadline_seconds": int,
    "task": dict,
    "dag": dict,
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", dict: "a mapping"}
MAX_FILE_BYTES = 16 * 1024 * 1024


class ScheduleFileError(ValueError):
    """A file that cannot be read or holds a bad schedule; the message names the place."""


def owner_of(path: Path) -> str:
    """The owner of the schedules a file declares: removed from the file, removed for good."""
    return f"file:{path.resolve()}"


def load_schedule_file(
    path: Path, *, namespace: str = "default", owner: str = ""
) -> list[ScheduleSpec]:
    """The schedules of the YAML file at ``path``; ``namespace`` applies to those naming none."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScheduleFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleFileError(f"{path}: cannot read it: {exc}") from None
    try:
        return parse_schedules(text, namespace=namespace, owner=owner)
    except ScheduleFileError as exc:
        raise ScheduleFileError(f"{path}: {exc}") from None
    except InvalidArgument as exc:
        raise ScheduleFileError(f"{path}: {exc}") from None


def parse_schedules(
    text: str, *, namespace: str = "default", owner: str = ""
) -> list[ScheduleSpec]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScheduleFileError(_yaml_problem(exc)) from None
    if document is None:
        return []
    if isinstance(document, dict):
        unknown = sorted(set(document) - {"schedules"})
        if unknown:
            raise InvalidArgument(str(unknown[0]), "unknown key; the file holds 'schedules:'")
        document = document.get("schedules") or []
    if not isinstance(document, list):
        raise InvalidArgument("schedules", "must be a list of schedules")
    specs = [
        _schedule(item, f"schedules[{i}]", namespace, owner) for i, item in enumerate(document)
    ]
    seen: dict[tuple[str, str], int] = {}
    for i, spec in enumerate(specs):
        key = (spec.namespace, spec.name)
        if key in seen:
            raise InvalidArgument(
                f"schedules[{i}].name",
                f"{spec.name!r} is also the name of schedules[{seen[key]}]",
            )
        seen[key] = i
    return specs


def _schedule(item: Any, path: str, namespace: str, owner: str) -> ScheduleSpec:
    if not isinstance(item, dict):
        raise InvalidArgument(path, "must be a mapping (name, cron, task or dag, ...)")
    for key, value in item.items():
        kind = _KEYS.get(str(key))
        if kind is None:
            raise InvalidArgument(
                f"{path}.{key}", f"unknown key; the keys of a schedule are {', '.join(_KEYS)}"
            )
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgument(f"{path}.{key}", f"must be {_TYPE_NAMES[kind]}, got {value!r}")
    for required in ("name", "cron"):
        if item.get(required) is None:
            raise InvalidArgument(f"{path}.{required}", "is required")
    if (item.get("task") is None) == (item.get("dag") is None):
        raise InvalidArgument(
            f"{path}.task", "give what each tick fires: a task, or a dag (one of them)"
        )
    target_kind = "dag" if item.get("dag") is not None else "task"
    return validate_schedule(
        namespace=item.get("namespace") or namespace,
        name=item["name"],
        cron=item["cron"],
        timezone=item.get("timezone") or "",
        concurrency_policy=item.get("concurrency_policy") or "",
        suspend=bool(item.get("suspend")),
        starting_deadline_seconds=item.get("starting_deadline_seconds"),
        kind=target_kind,
        target=item[target_kind],
        owner=owner,
        path=path,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    hint = ""
    if "alias" in f"{problem} {getattr(exc, 'context', '')}":
        hint = " (quote cron expressions that start with '*': cron: \"*/5 * * * *\")"
    return f"not valid YAML: {where}{problem}{hint}"
