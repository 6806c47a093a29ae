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
from taskflow_operator.context import OperatorContext, context
from taskflow_operator.kube import Kube, load_configuration
from taskflow_operator.metrics import OperatorMetrics, http_app
from taskflow_operator.persistence import TaskDiffBaseStorage, TaskProgressStorage
from taskflow_operator.reconcile.housekeeping import housekeeping_loop
from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator")
ANNOTATIONS_PREFIX = "taskflow.dev"


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
        settings.posting.level = logging.WARNING  # no Event per handler that succeeded
        settings.watching.server_timeout = 300
        memo.ctx = await _start(config)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if config.kubeconfig is None:
            # The client library's in-cluster config honours KUBERNETES_SERVICE_HOST/PORT;
            # kopf's minimal service-account login assumes https://kubernetes.default.svc.
            return kopf.login_via_client(**kwargs)
        cfg = load_configuration(config.kubeconfig)
        token = (cfg.api_key or {}).get("authorization", "").removeprefix("Bearer ").strip()
        return kopf.ConnectionInfo(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            token=token or None,
        )

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        await _stop(context(memo))


async def _start(config: OperatorConfig) -> OperatorContext:
    settings = Settings.from_env()
    try:
        # Idempotent and serialized by an advisory lock: whichever of the API and the
        # operator starts first brings the schema up to date.
        await apply_migrations(settings.database_url)
        engine = await Engine.connect(settings)
    except UNAVAILABLE_ERRORS as exc:
        raise kopf.TemporaryError(str(exc), delay=5) from exc
    except Unavailable as exc:
        raise kopf.TemporaryError(str(exc), delay=5) from exc
    ctx = OperatorContext(
        config=config,
        engine=engine,
        kube=Kube(load_configuration(config.kubeconfig)),
        metrics=OperatorMetrics(),
    )
    if config.standalone:
        ctx.leadership.hold()  # no peers: this operator always leads
    if config.housekeeping:
        ctx.background.append(asyncio.create_task(housekeeping_loop(ctx, ctx.stop)))
    if config.http_port:
        runner = web.AppRunner(http_app(ctx.metrics, engine.queue_stats), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, config.http_host, config.http_port).start()
        ctx.http = runner
    log.info("operator started", extra={"namespaces": list(config.namespaces) or "all"})
    return ctx


async def _stop(ctx: OperatorContext) -> None:
    ctx.stop.set()
    await asyncio.gather(*ctx.background, return_exceptions=True)
    if ctx.http is not None:
        await ctx.http.cleanup()
    await ctx.engine.close()
    ctx.kube.close()
