"""Child processes the fault suite starts, hurts and must account for at the end.

Every child gets ``TASKFLOW_CHAOS_CLUSTER=<cluster id>`` in its environment and runs in a
session of its own, so a leftover one is found by scanning ``/proc`` (``leftover_processes``)
and none is mistaken for another test's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLUSTER_ENV = "TASKFLOW_CHAOS_CLUSTER"
POLL = 0.05


class HarnessError(AssertionError):
    """The harness could not bring the system to the state a scenario needs."""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took, raise ``HarnessError`` after
    ``timeout`` seconds naming ``what`` was awaited."""
    start = time.monotonic()
    deadline = start + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic() - start


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_json(url: str, timeout: float = 1.0) -> Any:
    """The decoded JSON body at ``url``, or None when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def log_tail(path: Path, lines: int = 6, width: int = 240) -> str:
    """The last ``lines`` lines of a process's output, each cut to ``width`` characters."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no output)"
    tail = [line if len(line) <= width else line[:width] + "..." for line in text.splitlines()]
    return "\n".join(tail[-lines:]) or "(no output)"


@dataclass
class Proc:
    """One child process with its output in ``log_path``."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    health_url: str = ""
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise HarnessError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.popen is None:
            return
        self.send(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once it exited within ``timeout`` seconds, else None."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float, sig: signal.Signals = signal.SIGTERM) -> str | None:
        """Ask it to exit; SIGKILL after ``timeout`` seconds. Returns a problem or None."""
        if self.popen is None or self.popen.poll() is not None:
            return None
        self.send(signal.SIGCONT)
        self.send(sig)
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
            return f"{self.name} (pid {self.pid}) did not exit within {timeout:.0f}s of {sig.name}"
        if code != 0:
            return f"{self.name} (pid {self.pid}) exited with code {code} after {sig.name}"
        return None


def _environ_has(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _cwd_under(pid: int, root: Path) -> bool:
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == root or root in cwd.parents


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = "?"
    return f"pid {pid}: {cmd[:120]}"


def leftover_processes(cluster_id: str, root: Path) -> list[int]:
    """Live processes of this cluster: its marker in their environment (API, workers, load)
    or their working directory under its data root (Redis, PostgreSQL)."""
    marker = f"{CLUSTER_ENV}={cluster_id}".encode()
    me = os.getpid()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":
            continue
        if _environ_has(pid, marker) or _cwd_under(pid, root):
            found.append(pid)
    return found


def reap_leftovers(cluster_id: str, root: Path) -> list[str]:
    """SIGKILL leftover processes of this cluster; describe each one that was found."""
    described: list[str] = []
    for pid in leftover_processes(cluster_id, root):
        described.append(_describe(pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return described
