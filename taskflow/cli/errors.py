"""What can go wrong in a command, and the exit code each becomes."""

from __future__ import annotations

from taskflow import eventloop

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input; exit code 2."""


class CommandError(Exception):
    """The command could not do its job; exit code 1."""


def loop_factory() -> eventloop.LoopFactory | None:
    """The event loop ``TASKFLOW_EVENT_LOOP`` chooses (``eventloop.loop_factory``); a
    ``UsageError`` when this installation cannot run it."""
    try:
        return eventloop.loop_factory()
    except eventloop.EventLoopError as exc:
        raise UsageError(str(exc)) from None


def unreachable(server: str, url: str, exc: BaseException) -> CommandError:
    """``cannot reach <server> at <host:port>: <first line of exc>``, without credentials."""
    return CommandError(f"cannot reach {server} at {host_of(url)}: {first_line(exc)}")


def host_of(url: str) -> str:
    """``host:port`` of a server URL, without the credentials."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "the configured URL"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
