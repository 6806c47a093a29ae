"""HTTP side of the API server: ``/metrics``, ``/healthz`` (alive), ``/readyz`` (storage up),
and the web dashboard under ``/dashboard/`` when one is given."""

from __future__ import annotations

import socket

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from taskflow.api.auth import bearer_token
from taskflow.api.health import CheckReady, readiness
from taskflow.api.metrics import ApiMetrics
from taskflow.api.tokens import Role, TokenRegistry


def build_app(
    metrics: ApiMetrics,
    check_ready: CheckReady,
    timeout: float = 5.0,
    dashboard: web.Application | None = None,
    *,
    tokens: TokenRegistry | None = None,
) -> web.Application:
    """With ``tokens`` that require auth, ``/metrics`` needs a token with the metrics role
    (``/healthz`` and ``/readyz`` stay open for probes)."""

    async def get_metrics(request: web.Request) -> web.Response:
        if tokens is not None and tokens.enabled:
            header = request.headers.get("Authorization")
            principal = tokens.authenticate(bearer_token([("authorization", header or "")]))
            if principal is None:
                return web.Response(
                    status=401, text="unauthenticated\n", headers={"WWW-Authenticate": "Bearer"}
                )
            if not principal.has(Role.METRICS):
                return web.Response(status=403, text="the token lacks the role 'metrics'\n")
        return web.Response(
            body=await metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        reason = await readiness(check_ready, timeout)
        if reason is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {reason}\n")

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if dashboard is not None:

        async def to_dashboard(request: web.Request) -> web.Response:
            raise web.HTTPFound("/dashboard/")

        app.router.add_get("/", to_dashboard)
        app.router.add_get("/dashboard", to_dashboard)
        app.add_subapp("/dashboard/", dashboard)
    return app


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) to its parts."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def bind(addr: str) -> socket.socket:
    """A listening TCP socket on ``addr`` (port 0 picks a free port)."""
    host, port = split_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
