"""The ``taskflow`` command: servers (``dev``, ``api``, ``worker``, ``operator``, ``migrate``)
and client commands (``submit``, ``status``, ``cancel``, ``queues``, ``bench``).

Bad input is one line on stderr naming the flag and the problem, exit code 2; an unreachable
server or a failed task is exit code 1. No traceback reaches the user.

* ``entrypoint``: ``main``, which parses, dispatches and turns errors into exit codes.
* ``parser``: the argument parser and the argument types that validate flags.
* ``servers``: the server commands.
* ``client_commands``: the commands that call the API, and how its errors read.
* ``output``: tasks and queues as text or JSON, and the progress line.
* ``errors``: ``UsageError``, ``CommandError``, the exit codes, and the lower layers' errors
  that become them.
"""

from taskflow.cli.entrypoint import main
from taskflow.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    UsageError,
)
from taskflow.cli.parser import build_parser

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "CommandError",
    "UsageError",
    "build_parser",
    "main",
]
