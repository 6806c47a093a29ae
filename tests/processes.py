"""Looking at processes from /proc, for tests of what outlives what."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from pathlib import Path

import pytest


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which only waits to be reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until_gone(pids: Iterable[int], deadline: float) -> None:
    """Return once none of ``pids`` runs; fail naming the survivors after ``deadline`` s."""
    pids = set(pids)
    end = time.monotonic() + deadline
    while True:
        running = sorted(pid for pid in pids if alive(pid))
        if not running:
            return
        if time.monotonic() > end:
            pytest.fail(f"still running after {deadline:g}s: {[cmdline(p) for p in running]}")
        time.sleep(0.05)
