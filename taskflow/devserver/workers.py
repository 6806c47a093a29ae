"""Worker processes of ``taskflow dev``: started, restarted with backoff after a crash, and
stopped by SIGTERM (the worker drains) with SIGKILL once the drain grace and
``STOP_MARGIN`` have passed, whatever the worker's handlers do.

Each worker runs in its own process group, so a Ctrl-C in the terminal reaches ``taskflow dev``
alone and the workers stop in order. Each writes its log to ``<log_dir>/worker-<n>.log``.
Workers follow their parent (``--watch-parent``): if ``taskflow dev`` is killed outright they
drain and exit on their own, killed in their turn when the drain outlasts its grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskflow.tether import STOP_MARGIN
from taskflow.waiting import stopped_within

log = logging.getLogger("taskflow.dev")

#: A worker that ran at least this long before exiting restarts without backoff.
HEALTHY_RUN_SECONDS = 60.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
LOG_TAIL_LINES = 8


@dataclass
class _Slot:
    index: int
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


class WorkerSupervisor:
    """Keeps ``count`` copies of ``argv`` running until ``stop()``."""

    def __init__(
        self,
        count: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path,
        drain_grace: float,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_dir = log_dir
        self.drain_grace = drain_grace
        self._slots = [_Slot(i + 1, log_dir / f"worker-{i + 1}.log") for i in range(count)]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.returncode is None]

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self._slots)

    async def start(self) -> None:
        """Spawn every worker; returns once each process exists."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for slot in self._slots:
            await self._spawn(slot)
            self._tasks.append(
                asyncio.create_task(self._supervise(slot), name=f"worker-{slot.index}")
            )

    async def stop(self) -> None:
        """SIGTERM every worker, give them ``drain_grace`` + ``STOP_MARGIN`` to drain and exit,
        then SIGKILL the ones still running."""
        self._stopping.set()
        pids = [pid for slot in self._slots if (pid := self._terminate(slot))]
        if pids:
            log.info("stopping workers (pids %s); they finish their tasks first", pids)
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=self.drain_grace + STOP_MARGIN)
        if late:
            log.warning(
                "workers still running %.0fs after SIGTERM; killing them",
                self.drain_grace + STOP_MARGIN,
            )
            self.kill()
            await asyncio.gather(*late, return_exceptions=True)

    def kill(self) -> None:
        """SIGKILL every worker still running (a second Ctrl-C, or a drain that hangs)."""
        self._stopping.set()
        for slot in self._slots:
            if slot.proc is not None and slot.proc.returncode is None:
                log.warning("killing worker %d (pid %d)", slot.index, slot.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.kill()

    def _terminate(self, slot: _Slot) -> int | None:
        if slot.proc is None or slot.proc.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            slot.proc.send_signal(signal.SIGTERM)
        return slot.proc.pid

    async def _spawn(self, slot: _Slot) -> None:
        with slot.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting worker\n".encode())
            out.flush()
            slot.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                process_group=0,
            )
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    async def _supervise(self, slot: _Slot) -> None:
        failures = 0
        while True:
            assert slot.proc is not None
            started = time.monotonic()
            code = await slot.proc.wait()
            if self._stopping.is_set():
                return
            ran = time.monotonic() - started
            failures = 1 if ran >= HEALTHY_RUN_SECONDS else failures + 1
            delay = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (failures - 1))
            log.warning(
                "worker %d (pid %d) exited with code %d after %.1fs; restarting in %.1fs "
                "(log: %s)%s",
                slot.index,
                slot.proc.pid,
                code,
                ran,
                delay,
                slot.log_path,
                _tail(slot.log_path),
            )
            if await stopped_within(self._stopping, delay):
                return
            slot.restarts += 1
            await self._spawn(slot)
            if self._stopping.is_set():
                self._terminate(slot)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "".join(f"\n    {line}" for line in lines)
