"""The client commands: ``submit``, ``status``, ``cancel``, ``queues``, ``schedules`` and
``bench``.

They call the API through ``taskflow_client``; its errors become one line that names the
server, or the flag behind a rejected field.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskflow.cli.dags import run_dag_command
from taskflow.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CommandError, UsageError
from taskflow.cli.output import (
    next_fire_text,
    print_queues,
    print_schedules,
    print_task,
    progress_line,
)

if TYPE_CHECKING:
    from taskflow.models import TaskSubmission
    from taskflow.scheduling import ScheduleSpec
    from taskflow_client import Client, Task, TaskRequest

CLIENT_COMMANDS = ("submit", "status", "cancel", "queues", "schedules", "dag", "bench")
#: Seconds a command keeps retrying while the API is unavailable: enough for a restart of the
#: API, short enough that a server that is not running at all is reported at once.
CLI_RETRY_BUDGET = 3.0
_FIELD_FLAGS = {
    "queue": "QUEUE",
    "handler": "HANDLER",
    "task_id": "ID",
    "payload": "--payload",
    "priority": "--priority",
    "delay": "--delay",
    "run_at": "--delay",
    "max_retries": "--max-retries",
    "timeout": "--timeout",
    "idempotency_key": "--idempotency-key",
    "namespace": "--namespace",
}
_UNREACHABLE = re.compile(
    r"failed to connect|connection refused|dns resolution failed|socket closed|"
    r"name resolution|no address|connect failed",
    re.IGNORECASE,
)


def run_client_command(args: argparse.Namespace) -> int:
    from taskflow_client import (
        Client,
        InvalidArgumentError,
        NotFoundError,
        TaskFlowError,
        UnauthenticatedError,
        UnavailableError,
    )

    handlers: dict[str, Callable[[Client, argparse.Namespace], int]] = {
        "submit": _submit,
        "status": _status,
        "cancel": _cancel,
        "queues": _queues,
        "schedules": _schedules,
        "dag": run_dag_command,
        "bench": _bench,
    }
    try:
        # A command waits out a short API restart (TASKFLOW_RETRY_BUDGET overrides), but a
        # server that is not running at all is reported within seconds.
        budget = None if os.environ.get("TASKFLOW_RETRY_BUDGET") else CLI_RETRY_BUDGET
        client = Client(
            args.addr,
            token=args.token,
            namespace=getattr(args, "namespace", "default"),
            timeout=60.0,
            retry_budget=budget,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    target = client.target
    try:
        with client:
            return handlers[args.command](client, args)
    except UnavailableError as exc:
        if _UNREACHABLE.search(exc.details):
            raise CommandError(
                f"cannot reach TaskFlow at {target} (is 'taskflow dev' running?)"
            ) from None
        raise CommandError(f"TaskFlow at {target} is unavailable: {exc.details}") from None
    except InvalidArgumentError as exc:
        raise UsageError(_flag_message(exc.field, exc.details)) from None
    except NotFoundError as exc:
        raise CommandError(exc.details) from None
    except UnauthenticatedError as exc:
        raise CommandError(
            f"TaskFlow at {target} refused the call: {exc.details} "
            "(pass --token or set TASKFLOW_API_TOKEN)"
        ) from None
    except TaskFlowError as exc:
        raise CommandError(exc.details) from None


def _flag_message(field: str | None, details: str) -> str:
    if not field:
        return details
    problem = details[len(field) + 2 :] if details.startswith(f"{field}: ") else details
    flag = _FIELD_FLAGS.get(field.rsplit(".", 1)[-1], field)
    return f"{flag}: {problem}"


def _submit(client: Client, args: argparse.Namespace) -> int:
    task_id: str = client.submit(
        args.queue,
        args.handler,
        args.payload,
        priority=args.priority,
        delay=args.delay,
        max_retries=args.max_retries,
        timeout=args.timeout,
        idempotency_key=args.idempotency_key,
        namespace=args.namespace,
    )
    if not args.wait:
        print(json.dumps({"id": task_id}) if args.json else task_id)
        return 0
    print(f"submitted {task_id}", file=sys.stderr)
    try:
        _wait_showing_progress(client, task_id, args.wait_timeout)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the task goes on (taskflow status {task_id})", file=sys.stderr)
        return EXIT_INTERRUPTED
    task = client.get(task_id)
    print_task(task, as_json=args.json)
    return 0 if task.state == "succeeded" else EXIT_FAILURE


def _status(client: Client, args: argparse.Namespace) -> int:
    print_task(client.get(args.task_id), as_json=args.json)
    return 0


def _cancel(client: Client, args: argparse.Namespace) -> int:
    task = client.cancel(args.task_id)
    if task.state == "cancelled":
        print(f"cancelled {task.id}")
        return 0
    if task.done:
        print(f"task {task.id} already {task.state}; nothing to cancel", file=sys.stderr)
        return EXIT_FAILURE
    print(f"cancellation of {task.id} requested; it is {task.state} until its worker stops it")
    return 0


def _queues(client: Client, args: argparse.Namespace) -> int:
    stats = client.queues("" if args.all_namespaces else args.namespace)
    where = "any namespace" if args.all_namespaces else f"namespace {args.namespace!r}"
    print_queues(stats, as_json=args.json, where=where)
    return 0


def _schedules(client: Client, args: argparse.Namespace) -> int:
    if args.action is None:
        if args.target is not None:
            raise UsageError(
                f"ACTION: give apply, delete, suspend or resume before {args.target!r}"
            )
        schedules = client.list_schedules("" if args.all_namespaces else args.namespace)
        where = "any namespace" if args.all_namespaces else f"namespace {args.namespace!r}"
        print_schedules(schedules, as_json=args.json, where=where, now=_now())
        return 0
    if args.target is None:
        raise UsageError(f"{'FILE' if args.action == 'apply' else 'NAME'}: required")
    if args.action == "apply":
        return _apply_schedules(client, args)
    name: str = args.target
    where = f"{args.namespace}/{name}"
    if args.action == "delete":
        if not client.delete_schedule(name, namespace=args.namespace):
            raise CommandError(f"schedule {name!r} not found in namespace {args.namespace!r}")
        _say(args, {"deleted": where}, f"deleted schedule {where}")
        return 0
    if args.action == "suspend":
        schedule = client.suspend_schedule(name, namespace=args.namespace)
        _say(args, schedule, f"suspended schedule {where}")
    else:
        schedule = client.resume_schedule(name, namespace=args.namespace)
        _say(args, schedule, f"resumed schedule {where}: {next_fire_text(schedule, _now())}")
    return 0


def _apply_schedules(client: Client, args: argparse.Namespace) -> int:
    from pathlib import Path

    from taskflow.scheduling.files import ScheduleFileError, load_schedule_file

    try:
        specs = load_schedule_file(Path(args.target), namespace=args.namespace)
    except ScheduleFileError as exc:
        raise UsageError(str(exc)) from None
    applied = []
    for spec in specs:
        schedule = client.put_schedule(
            spec.name,
            spec.cron,
            _task_request(spec.task()) if spec.kind == "task" else None,
            dag=_dag_target(spec) if spec.kind == "dag" else None,
            timezone=spec.timezone,
            concurrency_policy=spec.concurrency_policy.value,
            suspend=spec.suspend,
            starting_deadline_seconds=spec.starting_deadline_seconds,
            namespace=spec.namespace,
        )
        applied.append(schedule)
        if not args.json:
            where = f"{schedule.namespace}/{schedule.name}"
            print(f"applied schedule {where}: {next_fire_text(schedule, _now())}")
    if args.json:
        from taskflow.cli.output import jsonable

        print(json.dumps([jsonable(s) for s in applied], indent=2))
    elif not specs:
        print(f"{args.target} declares no schedules; nothing to apply")
    return 0


def _dag_target(spec: ScheduleSpec) -> dict[str, Any]:
    """The client's form of a DAG schedule's run (the engine's field names)."""
    from taskflow_client import Step

    dag = spec.dag()
    steps = []
    for step in dag.steps:
        task = _task_request(step.task)
        steps.append(
            Step(
                name=step.name,
                handler=task.handler,
                payload=task.payload,
                depends_on=step.depends_on,
                queue=task.queue,
                priority=task.priority,
                max_retries=task.max_retries,
                timeout=task.timeout,
                retry=task.retry,
                labels=task.labels,
                concurrency_key=task.concurrency_key,
                concurrency_limit=task.concurrency_limit,
            )
        )
    target: dict[str, Any] = {
        "queue": dag.queue,
        "steps": steps,
        "failure_policy": dag.failure_policy,
        "labels": dag.labels,
    }
    if dag.name:
        target["name"] = dag.name
    return target


def _task_request(task: TaskSubmission) -> TaskRequest:
    """The client's form of a task submission (the engine's field names)."""
    from taskflow_client import RetryPolicy, TaskRequest

    retry = task.retry
    return TaskRequest(
        queue=task.queue,
        handler=task.handler,
        payload=task.payload,
        priority=task.priority,
        max_retries=task.max_retries,
        timeout=task.timeout_seconds or None,
        concurrency_key=task.concurrency_key,
        concurrency_limit=task.concurrency_limit,
        retry=RetryPolicy(retry.initial_seconds, retry.multiplier, retry.max_seconds)
        if retry
        else None,
        labels=task.labels or None,
    )


def _say(args: argparse.Namespace, value: object, text: str) -> None:
    if args.json:
        from taskflow.cli.output import jsonable

        print(json.dumps(jsonable(value), indent=2))
    else:
        print(text)


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _bench(client: Client, args: argparse.Namespace) -> int:
    import time

    from taskflow_client import NotFoundError, TaskRequest

    def finished() -> tuple[int, int, int]:
        try:
            s = client.queue_stats(args.queue)
        except NotFoundError:
            return 0, 0, 0
        return s.succeeded, s.failed, s.cancelled

    base = finished()
    where = f"{args.namespace}/{args.queue}"
    started = time.perf_counter()
    for offset in range(0, args.count, args.batch):
        size = min(args.batch, args.count - offset)
        client.submit_many([TaskRequest(queue=args.queue, handler=args.handler)] * size)
    submitted = time.perf_counter() - started
    print(
        f"submitted {args.count} {args.handler} tasks to {where} in {submitted:.2f}s: "
        f"{args.count / submitted:,.0f} tasks/s (batches of {args.batch})",
        flush=True,
    )
    tty = sys.stderr.isatty()
    last_done, last_change = -1, time.monotonic()
    while True:
        counts = [now - then for now, then in zip(finished(), base, strict=True)]
        done = sum(counts)
        elapsed = time.perf_counter() - started
        if tty:
            sys.stderr.write(f"\r\033[K{done}/{args.count} finished  {elapsed:.1f}s")
            sys.stderr.flush()
        if done >= args.count:
            break
        if done != last_done:
            last_done, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > args.stall_timeout:
            raise CommandError(
                f"no task of {where} finished for {args.stall_timeout:g}s ({done}/{args.count}"
                " done); are workers running for this queue and handler?"
            )
        time.sleep(0.1)
    if tty:
        sys.stderr.write("\n")
    succeeded, failed, cancelled = counts
    print(
        f"all {args.count} finished {elapsed:.2f}s after the first submit: "
        f"{args.count / elapsed:,.0f} tasks/s end to end "
        f"(succeeded {succeeded}, failed {failed}, cancelled {cancelled})"
    )
    return 0 if failed == cancelled == 0 else EXIT_FAILURE


def _wait_showing_progress(client: Client, task_id: str, timeout: float | None) -> Task:
    """Follow the task until it is terminal, showing its state on stderr: one updating line
    on a terminal, one line per change otherwise."""
    import queue
    import threading
    import time

    from taskflow_client import TaskFlowTimeoutError

    updates: queue.Queue[Task | BaseException] = queue.Queue()

    def pump() -> None:
        try:
            for task in client.watch(task_id):
                updates.put(task)
        except BaseException as exc:
            updates.put(exc)

    threading.Thread(target=pump, name="watch", daemon=True).start()
    started = time.monotonic()
    tty = sys.stderr.isatty()
    last: Task | None = None
    shown: tuple[object, ...] | None = None
    try:
        while True:
            try:
                item = updates.get(timeout=0.2)
            except queue.Empty:
                item = None
            if isinstance(item, BaseException):
                raise item
            last = item or last
            elapsed = time.monotonic() - started
            if last is not None:
                line = progress_line(last, elapsed)
                key = (last.state, last.attempts, last.progress_message)
                if tty:
                    sys.stderr.write(f"\r\033[K{line}")
                    sys.stderr.flush()
                elif key != shown:
                    print(line, file=sys.stderr, flush=True)
                shown = key
                if last.done:
                    return last
            if timeout is not None and elapsed > timeout:
                raise TaskFlowTimeoutError(
                    f"task {task_id} did not finish within {timeout:g}s; it goes on"
                )
    finally:
        if tty:
            sys.stderr.write("\n")
