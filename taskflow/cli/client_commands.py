"""The client commands: ``submit``, ``status``, ``cancel``, ``queues`` and ``bench``.

They call the API through ``taskflow_client``; its errors become one line that names the
server, or the flag behind a rejected field.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskflow.cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, CommandError, UsageError
from taskflow.cli.output import print_queues, print_task, progress_line

if TYPE_CHECKING:
    from taskflow_client import Client, Task

CLIENT_COMMANDS = ("submit", "status", "cancel", "queues", "bench")
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
        "bench": _bench,
    }
    try:
        client = Client(
            args.addr,
            token=args.token,
            namespace=getattr(args, "namespace", "default"),
            timeout=30.0,
            retries=3,
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
