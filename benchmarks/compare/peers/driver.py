"""Runs one peer's scenarios in the peers' virtualenv and prints the figures as JSON.

    python driver.py PEER --tasks N --submits M --latency-tasks L --rate R

PEER is the module ``PEER_app`` beside this file. Every scenario starts from an empty logical
database; workers are the peer's own command line, in their own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from common import COUNTER, REDIS_URL, STARTED

HERE = Path(__file__).resolve().parent
DEADLINE = 60.0


def percentiles_ms(values: list[float]) -> dict[str, float]:
    s = sorted(v * 1000 for v in values)
    if not s:
        return {}

    def q(p: float) -> float:
        pos = (len(s) - 1) * p
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return {"p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": s[-1]}


class Workers:
    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(HERE), "BENCH_REDIS_URL": REDIS_URL}
        logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))
        self.log = open(logs / f"peer-{os.getpid()}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=HERE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Children of the group that outlived their parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {DEADLINE:g}s")
        time.sleep(0.002)


def wait_progress(get: Any, target: int, what: str) -> None:
    """Until ``get()`` reaches ``target``; gives up only after DEADLINE without progress."""
    last, since = -1, time.monotonic()
    while True:
        now = int(get())
        if now >= target:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > DEADLINE:
            raise SystemExit(f"{what}: stuck at {now} of {target} for {DEADLINE:g}s")
        time.sleep(0.002)


def drain(app: Any, r: redis.Redis, count: int) -> dict[str, float]:
    r.flushdb()
    for _ in range(count):
        app.submit_one("incr")
    w = Workers(app.worker_argv(str(Path(sys.executable).parent)))
    try:
        wait_for(lambda: int(r.get(COUNTER) or 0) > 0, "the first task")
        first = time.perf_counter()
        wait_progress(lambda: r.get(COUNTER) or 0, count, "drain")
        end = time.perf_counter()
    finally:
        w.stop()
    return {"tasks_per_s": count / (end - first)}


def submit(app: Any, r: redis.Redis, count: int) -> dict[str, float]:
    r.flushdb()
    app.submit_one("incr")
    calls = []
    started = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        app.submit_one("incr")
        calls.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    return {"tasks_per_s": count / elapsed, **percentiles_ms(calls)}


def latency(app: Any, r: redis.Redis, count: int, rate: float) -> dict[str, float]:
    r.flushdb()
    w = Workers(app.worker_argv(str(Path(sys.executable).parent)))
    try:
        # A worker may subscribe after the first message (a stream group made at start-up):
        # the warm-up message is sent again until one runs.
        deadline = time.monotonic() + DEADLINE
        while not r.hexists(STARTED, "warm"):
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
            app.submit_one("stamp", "warm")
            time.sleep(0.5)
        r.delete(STARTED)
        sent: dict[str, float] = {}
        calls = []
        t0 = time.perf_counter()
        for i in range(count):
            pause = t0 + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            seq = str(i)
            sent[seq] = time.time()
            t = time.perf_counter()
            app.submit_one("stamp", seq)
            calls.append(time.perf_counter() - t)
        achieved = count / (time.perf_counter() - t0)
        wait_progress(lambda: r.hlen(STARTED), count, "latency")
        raw = r.hgetall(STARTED)
    finally:
        w.stop()
    lat = [float(raw[s.encode()]) - t for s, t in sent.items() if s.encode() in raw]
    call = percentiles_ms(calls)
    return {
        **percentiles_ms(lat),
        "submit_p50_ms": call["p50_ms"],
        "submit_p99_ms": call["p99_ms"],
        "achieved_per_s": achieved,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("peer")
    p.add_argument("--tasks", type=int, default=20000)
    p.add_argument("--submits", type=int, default=3000)
    p.add_argument("--latency-tasks", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--scenario", action="append", default=None)
    args = p.parse_args()
    app = importlib.import_module(f"{args.peer}_app")
    r = redis.Redis.from_url(REDIS_URL)
    out: dict[str, Any] = {}
    chosen = args.scenario or ["drain", "submit", "latency"]
    try:
        if "drain" in chosen:
            out["drain"] = drain(app, r, args.tasks)
        if "submit" in chosen:
            out["submit"] = submit(app, r, args.submits)
        if "latency" in chosen:
            out["latency"] = latency(app, r, args.latency_tasks, args.rate)
    finally:
        app.close()
        r.flushdb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
