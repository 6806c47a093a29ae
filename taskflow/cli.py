"""The ``taskflow`` command: servers (``dev``, ``api``, ``worker``, ``operator``, ``migrate``)
and client commands (``submit``, ``status``, ``cancel``, ``queues``, ``bench``).

Bad input is one line on stderr naming the flag and the problem, exit code 2; an unreachable
server or a failed task is exit code 1. No traceback reaches the user.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from taskflow.logs import configure_logging

if TYPE_CHECKING:
    from taskflow.config import Settings
    from taskflow_client import Client, Task

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input; exit code 2."""


class CommandError(Exception):
    """The command could not do its job; exit code 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as one line that names the flag (``--payload: not valid JSON``)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:]+): ", r"\1: ", message)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# -- argument types ---------------------------------------------------------------------------


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _seconds(*, positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {text!r}"
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"must be {'greater than' if positive else 'at least'} 0, got {text}"
            )
        return value

    return parse


def _port(text: str) -> int:
    value = _int_at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {value}")
    return value


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# -- the parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )
    common.add_argument(
        "--log-format",
        default=argparse.SUPPRESS,
        choices=["json", "text"],
        help="log format (default: text for dev, json for the other servers)",
    )
    client = _Parser(add_help=False)
    client.add_argument(
        "--addr",
        default=None,
        help="API address (default $TASKFLOW_API_ADDR, else localhost:50051)",
    )
    client.add_argument("--token", default=None, help="API token (default $TASKFLOW_API_TOKEN)")
    namespace = _Parser(add_help=False)
    namespace.add_argument("--namespace", type=_name, default="default", help="(default default)")

    parser = _Parser(
        prog="taskflow",
        description="TaskFlow, a distributed task queue. Start with: taskflow dev --demo",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_: str, *parents: _Parser) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, parents=[common, *parents])

    p = add("dev", "run everything locally: Redis, PostgreSQL, API, housekeeping, workers")
    p.add_argument("--workers", type=_int_at_least(0), default=2, help="worker processes (2)")
    p.add_argument("--app", default=None, help="MODULE:OBJ of the handlers' Router")
    p.add_argument("--queue", action="append", type=_name, dest="queues", help="repeatable")
    p.add_argument("--namespace", type=_name, default="default", help="(default default)")
    p.add_argument("--data-dir", type=Path, default=Path(".taskflow"), help="(./.taskflow)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1)")
    p.add_argument("--grpc-port", type=_port, default=50051, help="(50051)")
    p.add_argument("--http-port", type=_port, default=8080, help="(8080)")
    p.add_argument("--concurrency", type=_int_at_least(1), default=10, help="per worker (10)")
    p.add_argument("--drain-grace", type=_seconds(positive=False), default=10.0, help="(10)")
    p.add_argument("--demo", action="store_true", help="keep submitting example tasks")

    p = add("api", "serve the gRPC API and HTTP metrics/health")
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (0.0.0.0)")
    p.add_argument("--grpc-port", type=_port, default=50051, help="(50051)")
    p.add_argument("--http-port", type=_port, default=8080, help="(8080)")
    p.add_argument(
        "--housekeeping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the recovery sweep in this process (default on; turn off when the "
        "operator runs it)",
    )

    p = add("worker", "run handlers of a Router on tasks of some queues")
    p.add_argument("--app", required=True, help="MODULE:OBJ of the Router")
    p.add_argument("--queue", action="append", type=_name, dest="queues", help="repeatable")
    p.add_argument("--namespace", type=_name, default="default", help="(default default)")
    p.add_argument("--concurrency", type=_int_at_least(1), default=10, help="(10)")
    p.add_argument("--health-port", type=_port, default=None, help="serve /healthz, /readyz")
    p.add_argument("--drain-grace", type=_seconds(positive=False), default=25.0, help="(25)")
    p.add_argument("--watch-parent", type=int, default=None, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "operator",
        help="run the Kubernetes operator (taskflow operator --help for its flags)",
        add_help=False,
    )
    p.add_argument("operator_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    p = add("migrate", "apply the PostgreSQL migrations")
    p.add_argument("--database-url", default=None, help="(default $TASKFLOW_DATABASE_URL)")

    p = add("submit", "submit a task", client, namespace)
    p.add_argument("queue", metavar="QUEUE", type=_name)
    p.add_argument("handler", metavar="HANDLER", type=_name)
    p.add_argument("--payload", type=_json_value, default=None, help="JSON value")
    p.add_argument("--priority", type=_int_at_least(-(2**31)), default=0, help="higher first")
    p.add_argument("--delay", type=_seconds(positive=False), default=None, help="seconds")
    p.add_argument("--max-retries", type=_int_at_least(0), default=None)
    p.add_argument("--timeout", type=_seconds(positive=True), default=None, help="seconds")
    p.add_argument("--idempotency-key", type=_name, default=None)
    p.add_argument("--wait", action="store_true", help="wait until it finishes")
    p.add_argument("--wait-timeout", type=_seconds(positive=True), default=None, help="seconds")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("status", "show a task and its attempts", client)
    p.add_argument("task_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("cancel", "cancel a task", client)
    p.add_argument("task_id", metavar="ID")

    p = add("queues", "list queues and their counters", client, namespace)
    p.add_argument("--all-namespaces", "-A", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("bench", "submit no-op tasks and measure submit and drain rates", client, namespace)
    p.add_argument("--count", type=_int_at_least(1), default=10_000, help="(10000)")
    p.add_argument("--batch", type=_int_at_least(1), default=500, help="(500)")
    p.add_argument("--queue", type=_name, default="default", help="(default)")
    p.add_argument("--handler", type=_name, default="noop", help="(noop)")
    p.add_argument("--stall-timeout", type=_seconds(positive=True), default=60.0, help="(60)")
    return parser


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "command", None) == "operator":
        # Everything after `operator` is the operator's own command line (see its --help).
        args.operator_args = [*extra, *args.operator_args]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.log_level = getattr(args, "log_level", "INFO")
    args.log_format = getattr(args, "log_format", None)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"taskflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"taskflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command in _CLIENT_COMMANDS:
        return _run_client_command(args)
    _logging(args, default_format="text" if command == "dev" else "json")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "dev": _dev,
        "api": _api,
        "worker": _worker,
        "operator": _operator,
        "migrate": _migrate,
    }
    return handlers[command](args)


def _logging(args: argparse.Namespace, *, default_format: str) -> None:
    fmt = args.log_format or default_format
    configure_logging(args.log_level, json_format=fmt == "json")
    args.log_format = fmt


def _settings() -> Settings:
    from taskflow.config import Settings

    try:
        return Settings.from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# -- server commands --------------------------------------------------------------------------


def _dev(args: argparse.Namespace) -> int:
    from taskflow.dev import DEFAULT_APP, DevOptions, run_dev
    from taskflow.devserver.services import PortInUseError
    from taskflow.embedded import EmbeddedServerError
    from taskflow.errors import Unavailable
    from taskflow_worker.loading import AppLoadError

    options = DevOptions(
        workers=args.workers,
        app=args.app or DEFAULT_APP,
        queues=args.queues or ["default"],
        namespace=args.namespace,
        data_dir=args.data_dir,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        concurrency=args.concurrency,
        drain_grace=args.drain_grace,
        demo=args.demo,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    try:
        return run_dev(options)
    except (AppLoadError, PortInUseError) as exc:
        raise UsageError(str(exc)) from None
    except (EmbeddedServerError, Unavailable) as exc:
        raise CommandError(str(exc)) from None


def _api(args: argparse.Namespace) -> int:
    from taskflow.devserver.services import ApiServices, PortInUseError, check_ports
    from taskflow.errors import Unavailable

    try:
        check_ports(args.host, {"--grpc-port": args.grpc_port, "--http-port": args.http_port})
    except PortInUseError as exc:
        raise UsageError(str(exc)) from None
    services = ApiServices(
        _settings(),
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        housekeeping=args.housekeeping,
    )

    async def serve() -> None:
        stop = _stop_on_signals()
        await services.start()
        logging.getLogger("taskflow.api").info(
            "housekeeping %s", "runs in this process" if args.housekeeping else "is off"
        )
        try:
            await stop.wait()
        finally:
            await services.stop(grace=10.0)

    try:
        asyncio.run(serve())
    except Unavailable as exc:
        raise CommandError(f"cannot reach the store: {exc}") from None
    return 0


def _worker(args: argparse.Namespace) -> int:
    import psycopg
    import redis.exceptions

    from taskflow.keys import QueueRef
    from taskflow_worker.loading import AppLoadError, load_router
    from taskflow_worker.runtime import WorkerConfig
    from taskflow_worker.serve import serve_worker

    try:
        router = load_router(args.app)
    except AppLoadError as exc:
        raise UsageError(str(exc)) from None
    if not len(router):
        raise UsageError(f"--app: {args.app} registers no handlers")
    settings = _settings()
    config = WorkerConfig(
        queues=[QueueRef(args.namespace, q) for q in args.queues or ["default"]],
        concurrency=args.concurrency,
        drain_grace=args.drain_grace,
    )
    if args.watch_parent is not None:
        _exit_with_parent(args.watch_parent)
    try:
        asyncio.run(serve_worker(router, settings, config, health_port=args.health_port))
    except psycopg.OperationalError as exc:
        where = _host_of(settings.database_url)
        raise CommandError(f"cannot reach PostgreSQL at {where}: {_first_line(exc)}") from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        where = _host_of(settings.redis_url)
        raise CommandError(f"cannot reach Redis at {where}: {_first_line(exc)}") from None
    except OSError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _operator(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module("taskflow_operator")
    except ImportError:
        raise UsageError(
            "the operator needs a Kubernetes cluster and the taskflow_operator package, which "
            "is not installed; run 'taskflow dev' locally, or see the deployment docs"
        ) from None
    run = getattr(module, "main", None)
    if not callable(run):
        raise CommandError("taskflow_operator has no main(); this installation is incomplete")
    return int(run(list(args.operator_args)) or 0)


def _migrate(args: argparse.Namespace) -> int:
    import psycopg

    from taskflow.store import apply_migrations

    url = args.database_url or _settings().database_url
    try:
        applied = asyncio.run(apply_migrations(url))
    except psycopg.OperationalError as exc:
        where = _host_of(url)
        raise CommandError(f"cannot reach PostgreSQL at {where}: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise CommandError(f"migration failed: {_first_line(exc)}") from None
    for mig in applied:
        print(f"applied {mig.version:04d}_{mig.name}")
    if not applied:
        print("database is up to date; nothing to apply")
    return 0


def _stop_on_signals() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _exit_with_parent(parent: int) -> None:
    """SIGTERM this process (a clean drain) once ``parent`` is gone, e.g. killed outright."""
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _host_of(url: str) -> str:
    """``host:port`` of a server URL, without the credentials."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "the configured URL"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- client commands --------------------------------------------------------------------------

_CLIENT_COMMANDS = ("submit", "status", "cancel", "queues", "bench")
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


def _run_client_command(args: argparse.Namespace) -> int:
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
    _print_task(task, as_json=args.json)
    return 0 if task.state == "succeeded" else EXIT_FAILURE


def _status(client: Client, args: argparse.Namespace) -> int:
    _print_task(client.get(args.task_id), as_json=args.json)
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
    if args.json:
        print(json.dumps([_jsonable(s) for s in stats], indent=2))
        return 0
    if not stats:
        where = "any namespace" if args.all_namespaces else f"namespace {args.namespace!r}"
        print(f"no queues in {where} yet")
        return 0
    columns = ["namespace", "queue", "ready", "scheduled", "running", "succeeded", "failed"]
    columns.append("cancelled")
    rows = [[str(getattr(s, c)) for c in columns] for s in stats]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in [[c.upper() for c in columns], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
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
                line = _progress_line(last, elapsed)
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


def _progress_line(task: Task, elapsed: float) -> str:
    parts = [str(task.state)]
    if task.attempts:
        parts.append(f"attempt {task.attempts}")
    if (task.progress or task.progress_message) and task.state != "succeeded":
        parts.append(f"{task.progress:.0%} {task.progress_message or ''}".rstrip())
    if task.error and not task.done:
        parts.append(f"last error: {task.error}")
    parts.append(f"{elapsed:.1f}s")
    return "  ".join(parts)


def _print_task(task: Task, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(task), indent=2))
        return
    rows: list[tuple[str, str]] = [
        ("task", task.id),
        ("state", str(task.state)),
        ("queue", f"{task.namespace}/{task.queue}"),
        ("handler", task.handler),
        ("payload", json.dumps(task.payload)),
    ]
    if task.priority:
        rows.append(("priority", str(task.priority)))
    if task.result is not None or task.state == "succeeded":
        rows.append(("result", json.dumps(task.result)))
    if task.error:
        rows.append(("error", task.error))
    if (task.progress or task.progress_message) and task.state != "succeeded":
        rows.append(("progress", f"{task.progress:.0%} {task.progress_message or ''}".rstrip()))
    rows.append(("attempts", f"{task.attempts} (max retries {task.max_retries})"))
    delayed = (
        task.run_at and task.created_at and (task.run_at - task.created_at).total_seconds() > 1
    )
    for label, when in (
        ("created", task.created_at),
        ("run at", task.run_at if delayed else None),
        ("started", task.started_at),
        ("finished", task.finished_at),
    ):
        if when is not None:
            rows.append((label, _when(when)))
    if task.started_at and task.finished_at:
        rows.append(("took", f"{(task.finished_at - task.started_at).total_seconds():.3f}s"))
    for label, value in rows:
        print(f"{label:<10}{value}")
    if task.traceback and task.state in ("retrying", "failed"):
        print("traceback of the last failed attempt")
        print("  " + task.traceback.rstrip().replace("\n", "\n  "))
    if task.attempt_history:
        print("history")
        for a in task.attempt_history:
            took = ""
            if a.started_at and a.finished_at:
                took = f"{(a.finished_at - a.started_at).total_seconds():.3f}s"
            line = f"  #{a.number:<3}{a.outcome:<10} {_when(a.started_at):<20} {took:>8}"
            line += f"  {a.worker}"
            if a.error:
                line += f"  {a.error}"
            print(line.rstrip())


def _when(value: Any) -> str:
    return "" if value is None else str(value.astimezone().strftime("%Y-%m-%d %H:%M:%S"))


def _jsonable(value: Any) -> Any:
    import dataclasses
    from datetime import datetime

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
