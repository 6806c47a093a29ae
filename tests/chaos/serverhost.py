"""Redis and PostgreSQL of one cluster, run by a process of their own.

The test process holds gRPC clients (and, in a full test session, gRPC servers); their threads
make ``fork()`` unsafe there, and starting PostgreSQL as another user (when we are root) needs
a real ``fork()`` to change the user before ``exec``. So the servers are started, killed,
paused and restarted by this small process, a fresh interpreter with no gRPC in it, which the
harness drives over its stdin and stdout: one JSON request per line, one JSON reply per line.

Requests: ``{"op": "<server>.<action>"}`` with server ``redis`` (actions ``start``, ``kill``,
``pause``, ``resume``, ``stop``) or ``postgres`` (``start``, ``restart``, ``crash``, ``stop``),
or ``{"op": "exit"}``. Replies: ``{"ok": true, "pid": N}`` or ``{"ok": false, "error": "..."}``.
At the end of its input it stops both servers and exits.

    python -m tests.chaos.serverhost '{"root": DIR, "redis_port": P, "postgres_port": Q,
                                       "fsync": false}'
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis


class Servers:
    def __init__(self, root: Path, redis_port: int, postgres_port: int, fsync: bool) -> None:
        self.redis = EmbeddedRedis(root / "redis", port=redis_port, persistent=False)
        self.postgres = EmbeddedPostgres(root / "postgres", port=postgres_port, fsync=fsync)
        self.ops: dict[str, Callable[[], None]] = {
            "redis.start": self.redis.start,
            "redis.kill": self.kill_redis,
            "redis.pause": lambda: self._signal(self.redis.pid, signal.SIGSTOP),
            "redis.resume": lambda: self._signal(self.redis.pid, signal.SIGCONT),
            "redis.stop": self.stop_redis,
            "postgres.start": self.postgres.start,
            "postgres.restart": self.restart_postgres,
            "postgres.crash": self.crash_postgres,
            "postgres.stop": self.postgres.stop,
        }

    @staticmethod
    def _signal(pid: int | None, sig: signal.Signals) -> None:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill_redis(self) -> None:
        """SIGKILL: the dispatch index is gone with the process (no persistence)."""
        self._signal(self.redis.pid, signal.SIGCONT)
        self._signal(self.redis.pid, signal.SIGKILL)
        self.redis.stop()  # reaps it

    def stop_redis(self) -> None:
        self._signal(self.redis.pid, signal.SIGCONT)
        self.redis.stop()

    def restart_postgres(self) -> None:
        """Fast shutdown (sessions rolled back), then start on the same data directory."""
        self.postgres.stop()
        self.postgres.start()

    def crash_postgres(self) -> None:
        """SIGKILL the postmaster and every backend at once (its process group), as an OOM
        kill or a node failure would; the next start runs crash recovery."""
        pid = self.postgres.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.postgres.stop()  # reaps the postmaster

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = str(request.get("op"))
        action = self.ops.get(op)
        if action is None:
            return {"ok": False, "error": f"unknown op {op!r}; one of {', '.join(self.ops)}"}
        try:
            action()
        except Exception as exc:
            return {"ok": False, "error": f"{op}: {type(exc).__name__}: {exc}"}
        server = self.redis if op.startswith("redis.") else self.postgres
        return {"ok": True, "pid": server.pid}

    def stop_all(self) -> None:
        for stop in (self.stop_redis, self.postgres.stop):
            with contextlib.suppress(Exception):
                stop()


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    servers = Servers(
        Path(config["root"]), config["redis_port"], config["postgres_port"], config["fsync"]
    )
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            print(json.dumps(servers.handle(request)), flush=True)
    finally:
        servers.stop_all()
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps({"ok": True, "pid": None}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
