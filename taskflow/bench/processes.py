"""Stopping the server processes a benchmark started."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence


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
