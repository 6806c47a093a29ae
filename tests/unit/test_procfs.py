"""Resident set size read from /proc, for this process and for others."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskflow.bench.scenarios import rss_mib
from taskflow.bench.servers import BenchError
from taskflow.procfs import RssUnavailable, rss_bytes

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

DEADLINE = 30.0


def _no_such_pid() -> int:
    """A pid no process can have: pids stay below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_this_process_has_a_resident_size() -> None:
    own = rss_bytes()
    assert own > 1024 * 1024  # a Python interpreter is at least a MiB
    # The same process named by its pid: the same order of size (it may move a little).
    assert abs(rss_bytes(os.getpid()) - own) < own


def test_memory_a_process_touches_shows_in_its_size() -> None:
    before = rss_bytes()
    block = bytearray(64 * 1024 * 1024)  # zero-filled: every page written
    assert rss_bytes() > before + 32 * 1024 * 1024
    del block


def test_a_process_that_does_not_exist_is_named_in_a_clear_error() -> None:
    pid = _no_such_pid()
    with pytest.raises(RssUnavailable, match=f"process {pid} is gone"):
        rss_bytes(pid)


def test_an_exited_process_not_yet_reaped_has_no_size() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        status = Path(f"/proc/{child.pid}/status")
        end = time.monotonic() + DEADLINE
        while "\nState:\tZ" not in status.read_text():  # a zombie until it is waited for
            assert time.monotonic() < end, "the child never exited"
            time.sleep(0.01)
        with pytest.raises(RssUnavailable, match=f"no VmRSS for process {child.pid}"):
            rss_bytes(child.pid)
    finally:
        child.wait()


def test_the_benchmark_reports_a_gone_worker_as_a_bench_error() -> None:
    assert rss_mib(os.getpid()) > 1.0
    with pytest.raises(BenchError, match="is gone"):
        rss_mib(_no_such_pid())
