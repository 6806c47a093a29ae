"""Throughput of ``taskflow dev`` end to end, as a user sees it: gRPC submit → Redis →
worker processes → PostgreSQL.

    python benchmarks/dev_throughput.py [--count 10000] [--batch 500] [--workers 2]

Starts ``taskflow dev`` on free ports with a fresh data dir (embedded Redis and PostgreSQL),
submits ``--count`` ``noop`` tasks with ``submit_many`` in batches, waits until every one is
terminal, then checks in PostgreSQL that every task succeeded and that none ran twice (one
attempt row per task). Prints the submit rate, the drain rate and the total time.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from taskflow.embedded import free_port
from taskflow_client import Client, TaskRequest

QUEUE = "default"
START_DEADLINE = 120.0
DRAIN_DEADLINE = 900.0


class Dev:
    """``taskflow dev`` in a subprocess; ``database_url`` comes from its banner."""

    def __init__(self, data_dir: Path, workers: int, concurrency: int) -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
        self.log = (data_dir.parent / "dev.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskflow",
                "--log-level",
                "WARNING",
                "dev",
                "--workers",
                str(workers),
                "--concurrency",
                str(concurrency),
                "--grpc-port",
                self.addr.rsplit(":", 1)[1],
                "--http-port",
                str(free_port()),
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.database_url = self._wait_for_banner()

    def _wait_for_banner(self) -> str:
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + START_DEADLINE
        database_url = ""
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise SystemExit(f"taskflow dev exited early; see {self.log.name}")
            if line.strip().startswith("PostgreSQL"):
                database_url = line.split()[1]
            if line.strip().startswith("worker logs"):
                return database_url

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.log.close()


def wait_until_terminal(client: Client, count: int) -> None:
    deadline = time.monotonic() + DRAIN_DEADLINE
    while True:
        s = client.queue_stats(QUEUE)
        done = s.succeeded + s.failed + s.cancelled
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done}/{count} tasks finished within {DRAIN_DEADLINE:g}s")
        time.sleep(0.05)


def wait_until_recorded(database_url: str, count: int) -> dict[str, int]:
    """Outcomes reach PostgreSQL in batches just after Redis: wait for the last ones."""
    deadline = time.monotonic() + 60
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute("SELECT state, count(*) FROM tasks GROUP BY state").fetchall()
            states = {str(state): int(n) for state, n in rows}
            terminal = sum(states.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
            if terminal >= count or time.monotonic() > deadline:
                return states
            time.sleep(0.05)


def duplicate_runs(database_url: str) -> tuple[int, int]:
    """(tasks with more than one attempt, attempt rows in all)."""
    with psycopg.connect(database_url) as conn:
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT task_id FROM task_attempts"
            " GROUP BY task_id HAVING count(*) > 1) AS d"
        ).fetchone()
        attempts = conn.execute("SELECT count(*) FROM task_attempts").fetchone()
    assert dupes is not None and attempts is not None
    return int(dupes[0]), int(attempts[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="taskflow-bench-"))
    dev = Dev(root / "data", args.workers, args.concurrency)
    code = 0
    try:
        with Client(dev.addr, timeout=60) as client:
            started = time.perf_counter()
            for offset in range(0, args.count, args.batch):
                size = min(args.batch, args.count - offset)
                client.submit_many([TaskRequest(queue=QUEUE, handler="noop")] * size)
            submitted = time.perf_counter() - started
            wait_until_terminal(client, args.count)
            drained = time.perf_counter() - started
        states = wait_until_recorded(dev.database_url, args.count)
        recorded = time.perf_counter() - started
        dupes, attempts = duplicate_runs(dev.database_url)
    finally:
        stop_code = dev.stop()
        shutil.rmtree(root, ignore_errors=True)

    succeeded = states.get("succeeded", 0)
    print(f"tasks          {args.count} noop, batches of {args.batch}, {args.workers} workers")
    print(f"submit         {submitted:.2f}s  {args.count / submitted:,.0f} tasks/s")
    print(f"drain          {drained:.2f}s  {args.count / drained:,.0f} tasks/s end to end")
    print(f"total          {recorded:.2f}s until PostgreSQL recorded every outcome")
    print(f"states         {dict(sorted(states.items()))}")
    print(f"attempt rows   {attempts}; tasks run more than once: {dupes}")
    print(f"dev exit code  {stop_code}")
    if succeeded != args.count or dupes or attempts != args.count or stop_code:
        print("FAILED: not every task succeeded exactly once, or dev did not stop cleanly")
        code = 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
