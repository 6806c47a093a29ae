"""What can go wrong in a command, and the exit code each becomes."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input; exit code 2."""


class CommandError(Exception):
    """The command could not do its job; exit code 1."""
