"""Connection settings shared by ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from ._errors import InvalidArgumentError
from ._retry import (
    DEFAULT_RETRY_BUDGET,
    RETRY_BUDGET_ENV,
    Attempts,
    RetryRules,
    budget_from_env,
    valid_budget,
)
from ._version import __version__

__all__ = [
    "ADDR_ENV",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "MAX_MESSAGE_BYTES",
    "TOKEN_ENV",
    "Settings",
]

ADDR_ENV = "TASKFLOW_API_ADDR"
TOKEN_ENV = "TASKFLOW_API_TOKEN"
DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0
"""Seconds one call may take by default, its retries included."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message the client sends or receives; the API server accepts the same, so a task
with a large payload or result stays readable."""

RECONNECT_BACKOFF_MS = (100, 1000)
"""First and longest pause of the channel between attempts to reconnect. gRPC's own default
grows to two minutes, which would keep a restarted server out of reach long after it is back;
the client's retries pace the calls instead."""

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Settings:
    """What a client connects to and how it calls."""

    target: str
    token: str | None
    namespace: str
    timeout: float | None
    retry: RetryRules

    @classmethod
    def resolve(
        cls,
        target: str | None,
        token: str | None,
        namespace: str,
        timeout: float | None,
        retry_budget: float | None,
        retries: int | None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from the constructor arguments, falling back to the environment.

        Raises ``InvalidArgumentError`` (a ``ValueError``) naming the argument (or environment
        variable) that is wrong.
        """
        source = os.environ if env is None else env
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 1
        ):
            raise InvalidArgumentError(f"retries: must be an integer >= 1 or None, got {retries!r}")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise InvalidArgumentError(
                f"timeout: must be a positive number of seconds or None, got {timeout!r}"
            )
        if not namespace:
            raise InvalidArgumentError("namespace: must not be empty")
        if retry_budget is not None:
            budget = valid_budget(retry_budget, "retry_budget")
        elif source.get(RETRY_BUDGET_ENV):
            budget = budget_from_env(source[RETRY_BUDGET_ENV])
        else:
            budget = DEFAULT_RETRY_BUDGET
        return cls(
            target=target or source.get(ADDR_ENV) or DEFAULT_TARGET,
            token=token if token is not None else (source.get(TOKEN_ENV) or None),
            namespace=namespace,
            timeout=None if timeout is None else float(timeout),
            retry=RetryRules(budget=budget, attempts=retries),
        )

    def attempts(self, retry_on: frozenset[grpc.StatusCode]) -> Attempts:
        """The attempts of one call starting now."""
        return self.retry.start(retry_on, self.timeout)

    @property
    def metadata(self) -> Metadata:
        """Metadata sent with every call."""
        if self.token:
            return (("authorization", f"Bearer {self.token}"),)
        return ()

    @property
    def channel_options(self) -> list[tuple[str, str | int]]:
        """gRPC channel arguments."""
        first, longest = RECONNECT_BACKOFF_MS
        return [
            ("grpc.primary_user_agent", f"taskflow-client/{__version__}"),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.initial_reconnect_backoff_ms", first),
            ("grpc.max_reconnect_backoff_ms", longest),
        ]
