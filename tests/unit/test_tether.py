"""Processes tethered to their parent end when it does, however it ends."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskflow import tether
from tests.processes import alive, wait_until_gone

pytestmark = pytest.mark.skipif(not tether.supported(), reason="needs PR_SET_PDEATHSIG")

DEADLINE = 30.0


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen[str]]]:
    """Parent processes started by a test, killed after it."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _hold(holder: list[subprocess.Popen[str]], code: str) -> tuple[subprocess.Popen[str], int]:
    """A Python parent running ``code``, which prints the pid of the child it starts."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    holder.append(proc)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_tethered_program_keeps_its_pid() -> None:
    argv = tether.tethered(["sleep", "60"], signal.SIGTERM)
    assert argv is not None
    proc = subprocess.Popen(argv)
    try:
        end = time.monotonic() + DEADLINE
        while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:2] != [b"sleep", b"60"]:
            assert time.monotonic() < end, "the wrapper never became the program"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()


def test_a_tethered_program_ends_when_its_parent_is_killed(
    holder: list[subprocess.Popen[str]],
) -> None:
    parent, child = _hold(
        holder,
        """
        import signal, subprocess, time
        from taskflow.tether import tethered
        proc = subprocess.Popen(tethered(["sleep", "600"], signal.SIGTERM))
        print(proc.pid, flush=True)
        time.sleep(600)
        """,
    )
    assert alive(child)
    parent.kill()
    parent.wait()
    wait_until_gone([child], DEADLINE)


def test_the_signal_follows_the_thread_that_started_the_program(
    holder: list[subprocess.Popen[str]],
) -> None:
    """Documented behaviour: a program started from a thread that ends is signalled, though
    the parent process lives on (hence: start tethered programs from the main thread)."""
    parent, child = _hold(
        holder,
        """
        import signal, subprocess, threading, time
        from pathlib import Path
        from taskflow.tether import tethered
        started = []

        def start():
            proc = subprocess.Popen(tethered(["sleep", "600"], signal.SIGTERM))
            end = time.monotonic() + 30
            # The wrapper has set the signal once it became sleep.
            while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\\0")[0] != b"sleep":
                assert time.monotonic() < end, "the wrapper never became sleep"
                time.sleep(0.01)
            started.append(proc)

        thread = threading.Thread(target=start)
        thread.start()
        thread.join()
        print(started[0].pid, flush=True)
        time.sleep(600)
        """,
    )
    wait_until_gone([child], DEADLINE)
    assert parent.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="changing identity needs root")
def test_the_tether_takes_on_the_identity_it_is_given() -> None:
    nobody = pwd.getpwnam("nobody")
    argv = tether.tethered(["id", "-u"], signal.SIGTERM, uid=nobody.pw_uid, gid=nobody.pw_gid)
    assert argv is not None
    result = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE, check=True)
    assert int(result.stdout) == nobody.pw_uid


def test_a_follower_that_ignores_sigterm_is_killed_after_its_grace(
    holder: list[subprocess.Popen[str]],
) -> None:
    parent, child = _hold(
        holder,
        """
        import subprocess, sys
        code = '''
        import os, signal, sys, time
        from taskflow.tether import follow_parent
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a drain that never ends
        follow_parent(os.getppid(), grace=1.0)
        print(os.getpid(), flush=True)
        time.sleep(600)
        '''
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        print(proc.stdout.readline().strip(), flush=True)
        proc.wait()
        """,
    )
    assert alive(child)
    parent.kill()
    parent.wait()
    wait_until_gone([child], DEADLINE)
