"""The API server process: gRPC task service, health, reflection, and the HTTP endpoints."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from grpc import aio
from grpc_health.v1 import health, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from taskflow.api.auth import TokenAuthInterceptor
from taskflow.api.dags import run_version
from taskflow.api.health import ReadinessMonitor
from taskflow.api.http import bind, build_app
from taskflow.api.metrics import ApiMetrics, MetricsInterceptor
from taskflow.api.servicer import TaskServiceServicer
from taskflow.api.tls import TlsConfig, server_credentials
from taskflow.api.tokens import TokenRegistry
from taskflow.api.watch import WatchHub
from taskflow.config import Settings
from taskflow.dashboard import Dashboard
from taskflow.engine import Engine
from taskflow.models import TaskRecord
from taskflow.store.dags import DagRunRecord
from taskflow.telemetry.grpc_server import tracing_interceptors
from taskflow.workflows.service import DagService
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

log = logging.getLogger("taskflow.api")

#: A request may carry this many maximal payloads (a batch) before gRPC itself refuses it.
MESSAGE_PAYLOADS = 8
#: Room for the rest of a request besides its payloads.
MESSAGE_HEADROOM = 4 * 1024 * 1024


#: Largest response the server sends; the Python client accepts as much (a task is bounded by
#: its payload and result limits, a page of tasks by ``max_page_bytes``).
MAX_SEND_BYTES = 64 * 1024 * 1024


def max_message_bytes(settings: Settings) -> int:
    return settings.max_payload_bytes * MESSAGE_PAYLOADS + MESSAGE_HEADROOM


class ApiServer:
    """Serves ``engine`` over gRPC and HTTP. The caller owns the engine (connect/close)."""

    def __init__(
        self,
        engine: Engine,
        *,
        grpc_addr: str = "0.0.0.0:50051",
        http_addr: str = "0.0.0.0:8080",
        readiness_interval: float = 2.0,
        tokens: TokenRegistry | None = None,
        reflection: bool = True,
        open_probes: bool = True,
        tls: TlsConfig | None = None,
    ) -> None:
        """``tokens`` defaults to the settings' ``api_token`` and ``api_tokens_file``;
        ``reflection`` off removes the reflection service; ``open_probes`` off puts health and
        reflection behind the token too."""
        self.engine = engine
        settings = engine.settings
        self.tokens = tokens or TokenRegistry(settings.api_token, settings.api_tokens_file or None)
        self.reflection = reflection
        self.open_probes = open_probes
        self.tls = tls
        if tls is None:
            self.tls = TlsConfig.from_paths(
                settings.api_tls_cert, settings.api_tls_key, settings.api_tls_client_ca
            )
        self.grpc_addr = grpc_addr
        self.http_addr = http_addr
        self.metrics = ApiMetrics(lambda: engine.list_queues(None))
        self.hub: WatchHub[TaskRecord] = WatchHub(engine.store.get_many)
        self.dags = DagService(engine)
        self.run_hub: WatchHub[DagRunRecord] = WatchHub(self.dags.get_many, version=run_version)
        self.dashboard = Dashboard(engine, dags=self.dags, tokens=self.tokens)
        self.health = health_aio.HealthServicer()
        self.readiness = ReadinessMonitor(
            engine.check_ready, self.health, interval=readiness_interval
        )
        self._grpc: aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._grpc_port: int | None = None
        self._http_port: int | None = None

    @property
    def grpc_port(self) -> int:
        if self._grpc_port is None:
            raise RuntimeError("the server is not started")
        return self._grpc_port

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise RuntimeError("the server is not started")
        return self._http_port

    def _build_grpc(self) -> aio.Server:
        settings = self.engine.settings
        limit = max_message_bytes(settings)
        server = aio.server(
            interceptors=[
                *tracing_interceptors(),
                MetricsInterceptor(self.metrics),
                TokenAuthInterceptor(self.tokens, open_probes=self.open_probes),
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", MAX_SEND_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        servicer = TaskServiceServicer(
            self.engine,
            self.hub,
            on_submit=self.metrics.on_submit,
            dags=self.dags,
            run_hub=self.run_hub,
        )
        pb_grpc.add_TaskServiceServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if self.reflection:
            reflection.enable_server_reflection(
                [
                    pb.DESCRIPTOR.services_by_name["TaskService"].full_name,
                    health.SERVICE_NAME,
                    reflection.SERVICE_NAME,
                ],
                server,
            )
        return server

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop(grace=0)
            raise

    async def _start(self) -> None:
        await self.readiness.start()
        self.hub.start()
        self.run_hub.start()
        server = self._build_grpc()
        if self.tls is None:
            port = server.add_insecure_port(self.grpc_addr)
        else:
            port = server.add_secure_port(self.grpc_addr, server_credentials(self.tls))
        if port == 0:
            raise OSError(f"cannot listen on {self.grpc_addr} for gRPC")
        self._grpc = server
        await server.start()
        self._grpc_port = port

        app = build_app(
            self.metrics,
            self.engine.check_ready,
            dashboard=self.dashboard.app(),
            tokens=self.tokens,
        )
        runner = web.AppRunner(app, access_log=None)
        self._http = runner
        await runner.setup()
        sock = bind(self.http_addr)
        await web.SockSite(runner, sock).start()
        self._http_port = sock.getsockname()[1]
        log.info(
            "API listening: gRPC port %d (%s, %s), HTTP port %d",
            self.grpc_port,
            "plaintext" if self.tls is None else "mutual TLS" if self.tls.client_ca else "TLS",
            "token required" if self.tokens.enabled else "no authentication",
            self.http_port,
        )

    async def stop(self, grace: float = 5) -> None:
        """Report NOT_SERVING, end open watches, let running calls finish for ``grace``."""
        await self.readiness.stop()
        await self.hub.close()
        await self.run_hub.close()
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        if self._http is not None:
            await self._http.cleanup()
            self._http = None


async def serve(settings: Settings, grpc_addr: str, http_addr: str, stop: asyncio.Event) -> None:
    """Connect the engine, serve until ``stop`` is set, then shut down cleanly."""
    engine = await Engine.connect(settings)
    try:
        server = ApiServer(engine, grpc_addr=grpc_addr, http_addr=http_addr)
        await server.start()
        try:
            await stop.wait()
        finally:
            await server.stop()
    finally:
        await engine.close()
