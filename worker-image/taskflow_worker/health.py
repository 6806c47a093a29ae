"""A worker's health endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP/1.1.

A few paths answered to kubelet probes and a Prometheus scraper do not need a web framework:
this is ``asyncio.start_server`` and one request per connection (``Connection: close``), which
keeps aiohttp (10 MiB of a worker's resident memory) out of the worker process. Requests
are bounded (request line and headers together at most ``MAX_REQUEST_BYTES``, read within
``READ_TIMEOUT`` seconds); GET and HEAD are served, other methods get 405, other paths 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST

from taskflow_worker.metrics import WorkerMetrics

if TYPE_CHECKING:
    from taskflow_worker.runtime import Worker

log = logging.getLogger("taskflow.worker")

#: The request line and headers together, at most.
MAX_REQUEST_BYTES = 8192
#: Seconds a client has to send its request (and to take the answer).
READ_TIMEOUT = 5.0

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}

Response = tuple[int, str, bytes]


def _json(body: object, status: int = 200) -> Response:
    return status, JSON, json.dumps(body).encode()


def _text(status: int) -> Response:
    return status, TEXT, f"{status}: {REASONS[status]}\n".encode()


class HealthServer:
    """The three endpoints of one worker; ``start`` binds, ``close`` stops serving."""

    def __init__(self, worker: Worker, host: str = "0.0.0.0", port: int = 0) -> None:
        self.worker = worker
        self.host = host
        self.port = port
        self._metrics = WorkerMetrics(worker)
        self._server: asyncio.Server | None = None
        self._routes: dict[str, Callable[[], Response]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._get_metrics,
        }

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), READ_TIMEOUT)
            self._server = None

    # -- the endpoints ------------------------------------------------------------------------

    def _healthz(self) -> Response:
        w = self.worker
        return _json(
            {
                "worker": w.config.name,
                "in_flight": len(w.inflight),
                "abandoned": w.abandoned,
                "claimed": w.claimed_total,
                "finished": w.finished_total,
                "draining": w.draining,
            }
        )

    def _readyz(self) -> Response:
        draining = self.worker.draining
        return _json({"draining": draining}, 503 if draining else 200)

    def _get_metrics(self) -> Response:
        return 200, CONTENT_TYPE_LATEST, self._metrics.render()

    # -- HTTP ---------------------------------------------------------------------------------

    def respond(self, head: bytes) -> tuple[Response, bool]:
        """The answer to a request whose line and headers are ``head``; and whether it
        was a HEAD request (the answer then goes without its body)."""
        line = head.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _text(400), False
        try:
            method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
        except UnicodeDecodeError:
            return _text(400), False
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return _text(404), False
        if method not in ("GET", "HEAD"):
            return _text(405), False
        return route(), method == "HEAD"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                response, head_only = self.respond(head)
            except asyncio.LimitOverrunError:
                response, head_only = _text(431), False
            except asyncio.IncompleteReadError:
                return  # the client went away before finishing its request
            except TimeoutError:
                response, head_only = _text(408), False
            status, content_type, body = response
            extra = b"Allow: GET, HEAD\r\n" if status == 405 else b""
            writer.write(
                f"HTTP/1.1 {status} {REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n".encode()
                + extra
                + b"\r\n"
                + (b"" if head_only else body)
            )
            async with asyncio.timeout(READ_TIMEOUT):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        except Exception:
            log.exception("health endpoint failed")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(READ_TIMEOUT):
                    await writer.wait_closed()
