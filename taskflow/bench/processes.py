"""Starting and stopping the server processes a benchmark runs."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import Self


class Started:
    """A context manager over ``start`` and ``stop``; a failed start stops what it began."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def terminate(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every process still running, wait up to ``grace`` seconds for each, then kill
    the ones that are left."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
