"""Redis and PostgreSQL as processes a scenario can kill, pause and start again.

Both keep their port across restarts (clients reconnect to the same address). Redis runs
without persistence, so a restart brings it back empty; PostgreSQL restarts on its data
directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis, free_port


class ChaosRedis:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.server = EmbeddedRedis(data_dir, port=self.port, persistent=False)
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> None:
        self.server.start()

    def kill(self) -> None:
        """SIGKILL: the dispatch index is gone with the process."""
        pid = self.server.pid
        if pid is not None:
            self.resume()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.server.stop()  # reaps the killed process

    def restart_empty(self) -> None:
        self.server.start()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections and answers nothing."""
        pid = self.server.pid
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        pid = self.server.pid
        if pid is not None and self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        self.resume()
        self.server.stop()


class ChaosPostgres:
    """``fsync`` on makes a crash (``crash``) lose nothing that was committed."""

    def __init__(self, data_dir: Path, *, fsync: bool) -> None:
        self.port = free_port()
        self.server = EmbeddedPostgres(data_dir, port=self.port, fsync=fsync)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pgdata(self) -> Path:
        return self.server.pgdata

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        """Fast shutdown (sessions rolled back), then start on the same data directory."""
        self.server.stop()
        self.server.start()

    def crash(self) -> None:
        """SIGKILL the postmaster and every backend at once (its process group), as an OOM
        kill or a node failure would; ``start`` runs crash recovery."""
        pid = self.server.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.server.stop()  # reaps the killed postmaster

    def stop(self) -> None:
        self.server.stop()
