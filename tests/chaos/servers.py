"""Redis and PostgreSQL as processes a scenario can kill, pause and start again.

They run under ``tests.chaos.serverhost`` (a process of their own, see there why); ``ServerHost``
drives it, ``ChaosRedis`` and ``ChaosPostgres`` are what scenarios call. Both servers keep their
port across restarts, so clients reconnect to the same address. Redis runs without
persistence: a restart brings it back empty. PostgreSQL restarts on its data directory.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from taskflow.embedded import free_port
from tests.chaos.processes import HarnessError, log_tail

REPO = Path(__file__).resolve().parents[2]
CALL_TIMEOUT = 120.0  # PostgreSQL may run initdb or crash recovery first


class ServerHost:
    def __init__(self, root: Path, env: Mapping[str, str], *, fsync: bool) -> None:
        self.root = root
        self.redis_port = free_port()
        self.postgres_port = free_port()
        self.log_path = root / "servers.log"
        config = {
            "root": str(root),
            "redis_port": self.redis_port,
            "postgres_port": self.postgres_port,
            "fsync": fsync,
        }
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.serverhost", json.dumps(config)],
                cwd=REPO,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def call(self, op: str) -> dict[str, Any]:
        """Run ``op`` in the host; raise ``HarnessError`` if it fails or takes too long."""
        stdin, stdout = self._pipes()
        try:
            stdin.write(json.dumps({"op": op}).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            raise HarnessError(f"{op}: the server host has exited; {self._tail()}") from None
        reply = self._read_line(stdout, op)
        if not reply.get("ok"):
            raise HarnessError(f"{reply.get('error')}; {self._tail()}")
        return reply

    def close(self) -> str | None:
        """Stop both servers and the host; a problem, or None."""
        if self._proc.poll() is not None:
            return None
        problem = None
        try:
            self.call("exit")
        except HarnessError as exc:
            problem = f"stopping the servers: {exc}"
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
            problem = problem or "the server host did not exit within 30s"
        return problem

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def _read_line(self, stdout: IO[bytes], op: str) -> dict[str, Any]:
        deadline = time.monotonic() + CALL_TIMEOUT
        line = b""
        fd = stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{op}: no answer within {CALL_TIMEOUT:.0f}s; {self._tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise HarnessError(f"{op}: the server host has exited; {self._tail()}")
                line += chunk
        result: dict[str, Any] = json.loads(line)
        return result

    def _tail(self) -> str:
        return f"its output ends with:\n{log_tail(self.log_path)}"


class ChaosRedis:
    def __init__(self, host: ServerHost) -> None:
        self.host = host
        self.port = host.redis_port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.host.call("redis.start")

    def kill(self) -> None:
        """SIGKILL: the dispatch index is gone with the process."""
        self.host.call("redis.kill")

    def restart_empty(self) -> None:
        self.host.call("redis.start")

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections and answers nothing."""
        self.host.call("redis.pause")

    def resume(self) -> None:
        self.host.call("redis.resume")


class ChaosPostgres:
    """Run with ``fsync`` on where it is crashed, so a crash loses nothing committed."""

    def __init__(self, host: ServerHost) -> None:
        self.host = host
        self.port = host.postgres_port

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/taskflow"

    def start(self) -> None:
        self.host.call("postgres.start")

    def restart(self) -> None:
        """Fast shutdown (sessions rolled back), then start on the same data directory."""
        self.host.call("postgres.restart")

    def crash(self) -> None:
        """SIGKILL the postmaster and all its backends at once; ``start`` runs crash recovery."""
        self.host.call("postgres.crash")
