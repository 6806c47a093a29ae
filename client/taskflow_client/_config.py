"""Connection settings shared by ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._retry import Backoff
from ._version import __version__

__all__ = ["ADDR_ENV", "DEFAULT_TARGET", "TOKEN_ENV", "Settings"]

ADDR_ENV = "TASKFLOW_API_ADDR"
TOKEN_ENV = "TASKFLOW_API_TOKEN"
DEFAULT_TARGET = "localhost:50051"

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Settings:
    """What a client connects to and how it calls."""

    target: str
    token: str | None
    namespace: str
    timeout: float | None
    backoff: Backoff

    @classmethod
    def resolve(
        cls,
        target: str | None,
        token: str | None,
        namespace: str,
        timeout: float | None,
        retries: int,
    ) -> Settings:
        """Settings from the constructor arguments, falling back to the environment."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be an integer >= 1, got {retries!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, got {timeout!r}")
        if not namespace:
            raise ValueError("namespace must not be empty")
        return cls(
            target=target or os.environ.get(ADDR_ENV) or DEFAULT_TARGET,
            token=token if token is not None else (os.environ.get(TOKEN_ENV) or None),
            namespace=namespace,
            timeout=timeout,
            backoff=Backoff(attempts=retries),
        )

    @property
    def metadata(self) -> Metadata:
        """Metadata sent with every call."""
        if self.token:
            return (("authorization", f"Bearer {self.token}"),)
        return ()

    @property
    def channel_options(self) -> list[tuple[str, str | int]]:
        """gRPC channel arguments."""
        return [("grpc.primary_user_agent", f"taskflow-client/{__version__}")]
