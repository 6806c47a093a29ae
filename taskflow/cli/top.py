"""``taskflow top``: queues and workers, live in the terminal, from the dashboard's JSON.

It reads ``/dashboard/api/queues`` and ``/dashboard/api/workers`` on the API server's HTTP port
(``--url``, default ``$TASKFLOW_DASHBOARD_URL``, else ``http://localhost:8080``) every
``--interval`` seconds and redraws two tables. With ``--once``, or when the output is not a
terminal, it prints them once and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from taskflow.cli.errors import CommandError, UsageError

URL_ENV = "TASKFLOW_DASHBOARD_URL"
DEFAULT_URL = "http://localhost:8080"
TIMEOUT = 10.0


@dataclass(frozen=True)
class Snapshot:
    queues: list[dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    workers: list[dict[str, Any]]
    stale_workers: int


class DashboardReader:
    """GETs of the dashboard's JSON API; errors become one line naming the server."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--url: expected http://HOST:PORT, got {url!r}")
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = token

    def get(self, path: str, **query: str) -> Any:
        url = f"{self.base}/dashboard/api/{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            reason = _error_of(exc)
            if exc.code == 401:
                raise CommandError(
                    f"{self.base} refused: {reason} (pass --token or set TASKFLOW_API_TOKEN)"
                ) from None
            if exc.code == 404 and "no such dashboard API" not in reason:
                raise CommandError(f"{self.base} serves no TaskFlow dashboard ({reason})") from None
            raise CommandError(f"{self.base}: {reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", exc)
            raise CommandError(
                f"cannot reach the TaskFlow dashboard at {self.base}: {why} "
                "(is 'taskflow dev' or 'taskflow api' running? --url names its HTTP port)"
            ) from None

    def snapshot(self, namespace: str | None) -> Snapshot:
        queues = self.get("queues", namespace=namespace or "")
        workers = self.get("workers")
        return Snapshot(
            queues=queues["queues"],
            history=queues["history"],
            workers=workers["workers"],
            stale_workers=workers.get("stale_hidden", 0),
        )


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        return str(body.get("error") or exc.reason)
    except (ValueError, OSError):
        return f"HTTP {exc.code} {exc.reason}"


def render(snap: Snapshot, source: str) -> Any:
    """Both tables as one ``rich`` renderable."""
    from rich.console import Group
    from rich.table import Table

    queues = Table(
        title=f"TaskFlow top  {source}  {time.strftime('%H:%M:%S')}",
        title_justify="left",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for i, name in enumerate(
        ("QUEUE", "READY", "SCHED", "RUNNING", "BACKLOG", "DONE/S", "FAIL%", "SUCCEEDED", "FAILED")
    ):
        queues.add_column(name, justify="left" if i == 0 else "right")
    queues.add_column("DEAD", justify="right")
    for q in snap.queues:
        points = snap.history.get(f"{q['namespace']}/{q['queue']}", [])
        recent = points[-5:]
        ended = sum(p["throughput"] for p in recent) / len(recent) if recent else 0.0
        rates = [p["failure_rate"] for p in recent if p["throughput"] > 0]
        fail = 100 * sum(rates) / len(rates) if rates else 0.0
        name = q["queue"] if q["namespace"] == "default" else f"{q['namespace']}/{q['queue']}"
        queues.add_row(
            name,
            str(q["ready"]),
            str(q["scheduled"]),
            str(q["running"]),
            str(q["backlog"]),
            f"{ended:.1f}",
            f"[red]{fail:.1f}[/]" if fail else "0.0",
            str(q["succeeded"]),
            str(q["failed"]),
            f"[red]{q['dead_letters']}[/]" if q["dead_letters"] else "0",
        )
    if not snap.queues:
        queues.add_row("(no queues yet)", *[""] * 9)

    workers = Table(box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(
        ("WORKER", "QUEUES", "IN FLIGHT", "CLAIMED", "FINISHED", "ABANDONED", "SEEN")
    ):
        workers.add_column(name, justify="left" if i < 2 else "right")
    for w in snap.workers:
        workers.add_row(
            w["name"],
            ", ".join(w["queues"]),
            f"{w['in_flight']}/{w['concurrency']}",
            str(w["claimed"]),
            str(w["finished"]),
            f"[yellow]{w['abandoned']}[/]" if w["abandoned"] else "0",
            f"{w['seen_seconds_ago']:.0f}s ago",
        )
    if not snap.workers:
        workers.add_row("(no worker running)", *[""] * 6)
    parts: list[Any] = [queues, "", workers]
    if snap.stale_workers:
        parts.append(f"{snap.stale_workers} worker(s) stopped heartbeating (not shown)")
    return Group(*parts)


def run_top(args: argparse.Namespace) -> int:
    from rich.console import Console

    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    token = args.token or os.environ.get("TASKFLOW_API_TOKEN") or None
    reader = DashboardReader(url, token)
    console = Console()
    if args.once or not console.is_terminal:
        console.print(render(reader.snapshot(args.namespace), reader.base))
        return 0
    from rich.live import Live

    snap = reader.snapshot(args.namespace)  # a server that is not there fails at once
    try:
        with Live(render(snap, reader.base), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                try:
                    snap = reader.snapshot(args.namespace)
                except CommandError as exc:
                    live.update(f"[red]{exc}[/] (retrying every {args.interval:g}s)", refresh=True)
                    continue
                live.update(render(snap, reader.base), refresh=True)
    except KeyboardInterrupt:
        return 0


def add_top_parser(sub: Any, parents: list[Any], seconds: Any) -> None:
    """``taskflow top``'s flags (called by ``taskflow.cli.parser``)."""
    p = sub.add_parser(
        "top",
        help="live view of queues and workers (from the API's HTTP port)",
        description="live view of queues and workers (from the API's HTTP port)",
        parents=parents,
    )
    p.add_argument(
        "--url",
        default=None,
        help=f"the API's HTTP address (default ${URL_ENV}, else {DEFAULT_URL})",
    )
    p.add_argument("--token", default=None, help="API token (default $TASKFLOW_API_TOKEN)")
    p.add_argument("--namespace", default=None, help="only this namespace's queues")
    p.add_argument("--interval", type=seconds, default=2.0, help="seconds between redraws (2)")
    p.add_argument("--once", action="store_true", help="print once and exit")
