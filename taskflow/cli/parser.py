"""The argument parser of ``taskflow``, and the argument types that validate its flags.

A bad flag is one line on stderr that names it (``--payload: not valid JSON``), exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from taskflow.cli.errors import EXIT_USAGE
from taskflow.cli.top import add_top_parser


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


_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _host(text: str) -> str:
    """An interface to listen on: an IP address or a host name (resolved when it binds)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOST_NAME.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"expected an IP address or a host name, got {text!r}"
            ) from None
    return text


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
    tracing = _Parser(add_help=False)
    tracing.add_argument(
        "--tracing", action="store_true", help="OpenTelemetry tracing (default: by OTEL_* env)"
    )

    parser = _Parser(
        prog="taskflow",
        description="TaskFlow, a distributed task queue. Start with: taskflow dev --demo",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_: str, *parents: _Parser) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, parents=[common, *parents])

    p = add("dev", "run everything locally: Redis, PostgreSQL, API, housekeeping, workers", tracing)
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
    p.add_argument(
        "--schedules",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML file of cron schedules to load at start (its removed ones are deleted)",
    )

    p = add("api", "serve the gRPC API and HTTP metrics/health", tracing)
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (0.0.0.0)")
    p.add_argument("--grpc-port", type=_port, default=50051, help="(50051)")
    p.add_argument("--http-port", type=_port, default=8080, help="(8080)")
    p.add_argument(
        "--http-host",
        default=None,
        help="interface of the HTTP port (/metrics, /healthz, /readyz); default: --host when "
        "a token is required, else 127.0.0.1",
    )
    p.add_argument(
        "--tokens-file",
        default=None,
        metavar="FILE",
        help="scoped API tokens, YAML or JSON, re-read on change (default "
        "$TASKFLOW_API_TOKENS_FILE)",
    )
    p.add_argument("--tls-cert", default=None, metavar="PEM", help="server certificate (TLS)")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="its private key")
    p.add_argument(
        "--tls-client-ca",
        default=None,
        metavar="PEM",
        help="CA of client certificates: clients must present one (mutual TLS)",
    )
    p.add_argument(
        "--reflection",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve gRPC reflection (default on)",
    )
    p.add_argument(
        "--open-probes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gRPC health and reflection need no token (default on; off: they need one too)",
    )
    p.add_argument(
        "--housekeeping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the recovery sweep and the cron scheduler in this process (default on; "
        "turn off when the operator runs them)",
    )

    p = add("worker", "run handlers of a Router on tasks of some queues", tracing)
    p.add_argument("--app", required=True, help="MODULE:OBJ of the Router")
    p.add_argument("--queue", action="append", type=_name, dest="queues", help="repeatable")
    p.add_argument("--namespace", type=_name, default="default", help="(default default)")
    p.add_argument("--concurrency", type=_int_at_least(1), default=10, help="(10)")
    p.add_argument("--health-port", type=_port, default=None, help="serve /healthz, /readyz")
    p.add_argument(
        "--health-host", type=_host, default="0.0.0.0", help="interface of --health-port (0.0.0.0)"
    )
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

    p = add(
        "schedules",
        "list cron schedules, or: apply FILE, delete NAME, suspend NAME, resume NAME",
        client,
        namespace,
    )
    p.add_argument(
        "action",
        metavar="ACTION",
        nargs="?",
        choices=["apply", "delete", "suspend", "resume"],
        help="apply FILE (YAML) | delete NAME | suspend NAME | resume NAME; none: list",
    )
    p.add_argument("target", metavar="FILE|NAME", nargs="?", help="what the action acts on")
    p.add_argument("--all-namespaces", "-A", action="store_true", help="list every namespace")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add(
        "dag",
        "DAG runs: submit FILE [--wait] | status ID | cancel ID | retry ID [--wait] | list",
        client,
        namespace,
    )
    p.add_argument(
        "action", metavar="ACTION", choices=["submit", "status", "cancel", "retry", "list"]
    )
    p.add_argument("target", metavar="FILE|ID", nargs="?", help="the DAG file, or a run id")
    p.add_argument("--queue", type=_name, default=None, help="default queue of the steps")
    p.add_argument("--idempotency-key", type=_name, default=None)
    p.add_argument("--wait", action="store_true", help="follow the run until it finishes")
    p.add_argument("--wait-timeout", type=_seconds(positive=True), default=None, help="seconds")
    p.add_argument("--limit", type=_int_at_least(1), default=50, help="runs listed (50)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("bench", "submit no-op tasks and measure submit and drain rates", client, namespace)
    p.add_argument("--count", type=_int_at_least(1), default=10_000, help="(10000)")
    p.add_argument("--batch", type=_int_at_least(1), default=500, help="(500)")
    p.add_argument("--queue", type=_name, default="default", help="(default)")
    p.add_argument("--handler", type=_name, default="noop", help="(noop)")
    p.add_argument("--stall-timeout", type=_seconds(positive=True), default=60.0, help="(60)")
    p.add_argument(
        "--suite",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the benchmark suite on embedded servers instead and write its report to DIR",
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=None,
        help="with --suite: submit, drain, latency, claim, scale, dag, cluster or memory "
        "(repeatable; default: all but memory)",
    )
    p.add_argument("--quick", action="store_true", help="with --suite: small counts")

    add_top_parser(sub, [common], _seconds(positive=True))
    return parser
