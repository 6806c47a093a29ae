"""The API server and housekeeping around one engine, as ``taskflow api`` and ``dev`` run them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from taskflow.api.server import ApiServer
from taskflow.api.tls import TlsConfig
from taskflow.api.tokens import TokenRegistry
from taskflow.config import Settings
from taskflow.embedded import port_unavailable
from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.scheduling import Scheduler

log = logging.getLogger("taskflow.services")


class PortInUseError(Exception):
    """A port a flag names is taken; the message names the flag."""

    def __init__(self, flag: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"{flag}: cannot listen on {host}:{port}: {reason}")
        self.flag = flag
        self.port = port


def check_ports(host: str, ports: Mapping[str, int]) -> None:
    """Raise ``PortInUseError`` for the first of ``{flag: port}`` that cannot be bound now."""
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port in seen:
            raise PortInUseError(flag, host, port, f"the same port as {seen[port]}")
        seen[port] = flag
        reason = port_unavailable(host, port)
        if reason is not None:
            raise PortInUseError(flag, host, port, reason)


class ApiServices:
    """An engine, the gRPC/HTTP API server on it and, optionally, housekeeping: the recovery
    sweep and the cron scheduler."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str,
        grpc_port: int,
        http_port: int,
        housekeeping: bool = True,
        http_host: str | None = None,
        tokens: TokenRegistry | None = None,
        tls: TlsConfig | None = None,
        reflection: bool = True,
        open_probes: bool = True,
    ) -> None:
        """``http_host`` defaults to ``host``; the others go to ``ApiServer``."""
        self.settings = settings
        self.http_host = http_host or host
        self._tokens = tokens
        self._tls = tls
        self._reflection = reflection
        self._open_probes = open_probes
        self.host = host
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.housekeeping = housekeeping
        self._engine: Engine | None = None
        self._server: ApiServer | None = None
        self._sweep_stop = asyncio.Event()
        self._sweep: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the services are not started")
        return self._engine

    async def start(self) -> None:
        """Connect (raises ``taskflow.errors.Unavailable``), then serve. Ports are the bound
        ones afterwards."""
        self._engine = await Engine.connect(self.settings)
        server: ApiServer | None = None
        try:
            await self._engine.check_ready()
            server = ApiServer(
                self._engine,
                grpc_addr=f"{_host_part(self.host)}:{self.grpc_port}",
                http_addr=f"{_host_part(self.http_host)}:{self.http_port}",
                tokens=self._tokens,
                tls=self._tls,
                reflection=self._reflection,
                open_probes=self._open_probes,
            )
            await server.start()
        except BaseException:
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop(0)
            await self._engine.close()
            self._engine = None
            raise
        self._server = server
        self.grpc_port, self.http_port = server.grpc_port, server.http_port
        if self.housekeeping:
            self._sweep = asyncio.create_task(
                Housekeeper(self._engine).run(self._sweep_stop), name="housekeeping"
            )
            self._scheduler = asyncio.create_task(
                Scheduler(self._engine).run(self._sweep_stop), name="scheduler"
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the API (in-flight calls get ``grace`` seconds), then housekeeping, then the
        engine's connections."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        self._sweep_stop.set()
        for task in (self._sweep, self._scheduler):
            if task is not None:
                await task
        self._sweep = self._scheduler = None
        if self._engine is not None:
            await self._engine.close()
            self._engine = None


def _host_part(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
