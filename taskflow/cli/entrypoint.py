"""``main``: parse the command line, run the command, turn its errors into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taskflow.cli.client_commands import CLIENT_COMMANDS, run_client_command
from taskflow.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    UsageError,
)
from taskflow.cli.parser import build_parser
from taskflow.cli.servers import SERVER_COMMANDS
from taskflow.cli.top import run_top
from taskflow.logs import configure_logging


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
    if command == "bench" and args.suite is not None:
        from taskflow.bench.command import run_suite_command

        return run_suite_command(args)
    if command in CLIENT_COMMANDS:
        return run_client_command(args)
    if command == "top":
        return run_top(args)
    _logging(args, default_format="text" if command == "dev" else "json")
    return SERVER_COMMANDS[command](args)


def _logging(args: argparse.Namespace, *, default_format: str) -> None:
    fmt = args.log_format or default_format
    configure_logging(args.log_level, json_format=fmt == "json")
    args.log_format = fmt
