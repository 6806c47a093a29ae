"""Start-up (engine, API client, HTTP endpoint, housekeeping) and clean-up; kopf settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from aiohttp import web

from taskflow.config import Settings
from taskflow.engine import UNAVAILABLE_ERRORS, Engine
from taskflow.errors import Unavailable
from taskflow.store import apply_migrations
from taskflow_operator import credentials, peering
from taskflow_operator.context import OperatorContext, context
from taskflow_operator.kube import Kube
from taskflow_operator.memory import Trimmer
from taskflow_operator.metrics import OperatorMetrics, http_app
from taskflow_operator.persistence import TaskDiffBaseStorage, TaskProgressStorage
from taskflow_operator.reconcile.housekeeping import housekeeping_loop
from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator")
ANNOTATIONS_PREFIX = "taskflow.dev"
ENGINE_DOWN: tuple[type[BaseException], ...] = (*UNAVAILABLE_ERRORS, Unavailable)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Progress and diff-base in annotations: status holds only what the CRDs declare.
        settings.persistence.progress_storage = TaskProgressStorage(prefix=ANNOTATIONS_PREFIX)
        # A Task's is derived from its status (never written, no copy of its payload).
        settings.persistence.diffbase_storage = TaskDiffBaseStorage(
            prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = f"{ANNOTATIONS_PREFIX}/operator"
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        # Serving named namespaces needs no cluster-wide access (the chart grants a Role in
        # each): no listing of namespaces, no watching of CRDs (installed before the operator).
        settings.scanning.disabled = bool(config.namespaces)
        ctx = await _start(config)
        try:
            await peering.configure(settings, config, ctx.kube.api)
        except BaseException:
            await _stop(ctx)
            raise
        if settings.peering.standalone:
            ctx.leadership.hold()  # no peers: this operator always leads
        memo.ctx = ctx

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as the operator's own client (kopf's service-account login
        # would assume https://kubernetes.default.svc; the client library honours
        # KUBERNETES_SERVICE_HOST/PORT).
        return credentials.connection_info(credentials.configuration(_source(config)))

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        await _stop(context(memo))


def _source(config: OperatorConfig) -> credentials.Source:
    try:
        return credentials.choose(config.kubeconfig)
    except credentials.NoCredentials as exc:
        raise kopf.PermanentError(str(exc)) from None


async def _start(config: OperatorConfig) -> OperatorContext:
    """Everything or nothing: a start that fails part-way (the HTTP port is taken, the engine
    is unreachable) closes what it opened before kopf retries or gives up."""
    source = _source(config)
    kube = Kube(credentials.configuration(source))
    settings = Settings.from_env()
    try:
        # Idempotent and serialized by an advisory lock: whichever of the API and the
        # operator starts first brings the schema up to date.
        await apply_migrations(settings.database_url)
        engine = await Engine.connect(settings)
    except ENGINE_DOWN as exc:
        kube.close()
        raise kopf.TemporaryError(str(exc), delay=5) from exc
    except BaseException:
        kube.close()
        raise
    ctx = OperatorContext(config=config, engine=engine, kube=kube, metrics=OperatorMetrics())
    try:
        if config.http_port:
            ctx.http = await _serve_http(ctx)
    except BaseException:
        await _stop(ctx)
        raise
    if config.housekeeping:
        ctx.background.append(asyncio.create_task(housekeeping_loop(ctx, ctx.stop)))
    if (trimmer := Trimmer.create()) is not None:
        ctx.background.append(asyncio.create_task(trimmer.run(ctx.stop)))
    log.info(
        "operator started (Kubernetes: %s, from %s; HTTP %s)",
        source.describe(),
        source.origin,
        f"{config.http_host}:{config.http_port}" if config.http_port else "off",
        extra={"namespaces": list(config.namespaces) or "all"},
    )
    return ctx


async def _serve_http(ctx: OperatorContext) -> web.AppRunner:
    config = ctx.config
    runner = web.AppRunner(http_app(ctx.metrics, ctx.engine.queue_stats), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.http_host, config.http_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise kopf.PermanentError(
            f"--http-port {config.http_port}: cannot listen on "
            f"{config.http_host}:{config.http_port} ({exc.strerror or exc}); "
            "pick another port, or 0 to turn the endpoint off"
        ) from None
    return runner


async def _stop(ctx: OperatorContext) -> None:
    ctx.stop.set()
    await asyncio.gather(*ctx.background, return_exceptions=True)
    if ctx.http is not None:
        await ctx.http.cleanup()
    await ctx.engine.close()
    ctx.kube.close()
