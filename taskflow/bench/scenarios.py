"""The scenarios of ``taskflow bench --suite``. Each returns one ``Result`` per measured case."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from redis.crc import key_slot

from taskflow import keys as K
from taskflow.bench.servers import BenchError, BenchServers, wait_until
from taskflow.bench.stats import summary_ms
from taskflow.keys import QueueKeys, QueueRef
from taskflow.models import DispatchBlob, RetryPolicy
from taskflow.procfs import RssUnavailable, rss_bytes
from taskflow.queue.dispatch import Dispatcher, EnqueueItem
from taskflow_client import TaskRequest

#: Seconds without progress after which a scenario is reported as stalled.
STALL_SECONDS = 60.0

#: Called with (work done, work total) as a scenario advances.
Progress = Callable[[int, int], None]


@dataclass
class Result:
    scenario: str  # submit | drain | latency | claim | scale | dag
    case: str  # e.g. "batch 100", "2x100 noop"
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def _chunks(n: int, size: int) -> Iterator[int]:
    for start in range(0, n, size):
        yield min(size, n - start)


# -- submit ---------------------------------------------------------------------------------


def submit_single(servers: BenchServers, count: int, progress: Progress) -> Result:
    """One task per call, one call at a time: the durable commit is inside each call."""
    durations: list[float] = []
    with servers.client() as c:
        c.submit("bench-submit", "noop")  # connection set-up stays out of the figure
        started = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            c.submit("bench-submit", "noop")
            durations.append(time.perf_counter() - t)
            if i % 50 == 0:
                progress(i, count)
        elapsed = time.perf_counter() - started
    progress(count, count)
    return Result(
        "submit",
        "single",
        {"tasks_per_s": count / elapsed, **summary_ms(durations)},
        {"tasks": count},
    )


def submit_batches(servers: BenchServers, size: int, count: int, progress: Progress) -> Result:
    """``submit_many`` of ``size`` tasks per call, one call at a time."""
    batch = [TaskRequest(queue="bench-submit", handler="noop")] * size
    calls = max(1, count // size)
    durations: list[float] = []
    with servers.client() as c:
        c.submit_many(batch)
        started = time.perf_counter()
        for i in range(calls):
            t = time.perf_counter()
            c.submit_many(batch)
            durations.append(time.perf_counter() - t)
            progress((i + 1) * size, calls * size)
        elapsed = time.perf_counter() - started
    return Result(
        "submit",
        f"batch {size}",
        {"tasks_per_s": calls * size / elapsed, **summary_ms(durations)},
        {"tasks": calls * size, "batch": size},
    )


# -- drain ----------------------------------------------------------------------------------

LAG_SQL = """
SELECT count(*) FILTER (WHERE state <> 'succeeded'),
       extract(epoch FROM max(updated_at) - max(finished_at))
FROM tasks WHERE namespace = 'default' AND queue = ANY(%s)
"""


def spread_names(base: str, n: int) -> list[str]:
    """``n`` queue names whose hash tags fall in different thirds of the cluster's slots (so on
    different masters of a three-master cluster, as ``redis-cli --cluster create`` splits)."""
    names: list[str] = []
    j = 0
    while len(names) < n:
        name = f"{base}-{j}" if n > 1 else base
        third = key_slot(QueueKeys(QueueRef("default", name)).ready.encode()) * 3 // 16384
        if n == 1 or third == len(names) % 3:
            names.append(name)
        j += 1
    return names


def _succeeded(r: Any, ref: QueueRef) -> int:
    return int(r.hget(QueueKeys(ref).stats, "succeeded") or 0)


def _preload(servers: BenchServers, queue: str, handler: str, count: int) -> None:
    with servers.client() as c:
        for n in _chunks(count, 1000):
            c.submit_many([TaskRequest(queue=queue, handler=handler)] * n)


def drain(
    servers: BenchServers,
    *,
    workers: int,
    concurrency: int,
    handler: str,
    count: int,
    progress: Progress,
    scenario: str = "drain",
    queues: int = 1,
    case: str | None = None,
) -> Result:
    """``count`` tasks queued first, then ``workers`` x ``concurrency`` drain them; the rate
    counts from the first completion to the last, and the record is checked in PostgreSQL."""
    base = f"bench-{scenario}-{handler}-{workers}x{concurrency}"
    names = spread_names(base, queues)
    for i, name in enumerate(names):
        _preload(servers, name, handler, count // queues + (1 if i < count % queues else 0))
    refs = [QueueRef("default", n) for n in names]
    r = servers.redis()
    try:
        servers.start_workers(workers, concurrency, names)
        first: float | None = None
        last_done, last_change = -1, time.monotonic()
        while True:
            done = sum(_succeeded(r, ref) for ref in refs)
            now = time.perf_counter()
            if done and first is None:
                first = now
            if done >= count:
                end = now
                break
            if done != last_done:
                last_done, last_change = done, time.monotonic()
                progress(done, count)
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise BenchError(f"{base}: no task finished for {STALL_SECONDS:g}s ({done})")
            time.sleep(0.005)
        progress(count, count)
        with psycopg.connect(servers.database_url, autocommit=True) as conn:
            row: Any = None

            def recorded() -> bool:
                nonlocal row
                row = conn.execute(LAG_SQL, (names,)).fetchone()
                return row is not None and row[0] == 0

            wait_until(recorded, STALL_SECONDS, f"{base}: every completion in PostgreSQL")
            recorded_at = time.perf_counter()
    finally:
        r.close()
        servers.stop_workers()
    assert first is not None
    elapsed = max(end - first, 1e-9)
    return Result(
        scenario,
        case or f"{workers}x{concurrency} {handler}",
        {
            "tasks_per_s": count / elapsed,
            "record_lag_ms": float(row[1] or 0.0) * 1000,
            "recorded_after_s": recorded_at - first,
        },
        {
            "tasks": count,
            "workers": workers,
            "concurrency": concurrency,
            "handler": handler,
            "queues": queues,
        },
    )


# -- latency --------------------------------------------------------------------------------


def latency(
    servers: BenchServers,
    *,
    rate: float,
    count: int,
    workers: int,
    concurrency: int,
    progress: Progress,
) -> Result:
    """Tasks submitted one at a time at ``rate`` per second to idle workers: submit (before
    the call) → handler start, and the submit call alone (durable commit included)."""
    queue = "bench-latency"
    servers.start_workers(workers, concurrency, [queue])
    r = servers.redis()
    sent: dict[str, float] = {}
    calls: list[float] = []
    try:
        r.delete(K.BENCH_STARTED)
        with servers.client() as c:
            c.submit(queue, "noop")
            t0 = time.perf_counter()
            for i in range(count):
                pause = t0 + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                wall, t = time.time(), time.perf_counter()
                task_id = c.submit(queue, "stamp")
                calls.append(time.perf_counter() - t)
                sent[task_id] = wall
                if i % 20 == 0:
                    progress(i, count)
            achieved = count / (time.perf_counter() - t0)
        wait_until(
            lambda: int(r.hlen(K.BENCH_STARTED)) >= count,
            STALL_SECONDS,
            "every latency task starting",
        )
        raw: dict[bytes, bytes] = r.hgetall(K.BENCH_STARTED)  # type: ignore[assignment]
        started = {k.decode(): float(v) for k, v in raw.items()}
    finally:
        r.close()
        servers.stop_workers()
    progress(count, count)
    lat = [started[tid] - t for tid, t in sent.items() if tid in started]
    call = summary_ms(calls)
    return Result(
        "latency",
        f"{rate:g}/s",
        {
            **summary_ms(lat),
            "submit_p50_ms": call["p50_ms"],
            "submit_p99_ms": call["p99_ms"],
            "achieved_per_s": achieved,
        },
        {"rate": rate, "tasks": count, "workers": workers, "concurrency": concurrency},
    )


# -- claim cost -----------------------------------------------------------------------------


def claim_cost(
    servers: BenchServers, depths: list[int], claims: int, progress: Progress
) -> list[Result]:
    """Time of one ``claim.lua`` call for one task with ``depth`` tasks ready."""
    return asyncio.run(_claim_cost(servers.redis_url, depths, claims, progress))


async def _claim_cost(url: str, depths: list[int], claims: int, progress: Progress) -> list[Result]:
    d = Dispatcher.connect(url)
    ref = QueueRef("default", "bench-claim")
    blob = DispatchBlob(
        id="",
        handler="noop",
        payload_json="null",
        max_retries=0,
        timeout_seconds=0.0,
        retry=RetryPolicy(),
    )
    results: list[Result] = []
    total = sum(depths) + claims * len(depths)
    done = 0
    try:
        for depth in depths:
            await _clear(d, ref)
            seq = 0
            for n in _chunks(depth + claims, 2000):
                items = [
                    EnqueueItem(id=f"{depth:08d}-{seq + i:012d}", blob=blob, priority=0, due_ms=0)
                    for i in range(n)
                ]
                seq += n
                await d.enqueue(ref, items)
                done += n
                progress(done, total)
            durations = []
            for _ in range(claims):
                t = time.perf_counter()
                batch = await d.claim(ref, 1, lease_ms=600_000, worker="bench")
                durations.append(time.perf_counter() - t)
                if not batch.tasks:
                    raise BenchError("claim returned nothing from a full queue")
            results.append(
                Result("claim", f"depth {depth:,}", summary_ms(durations), {"depth": depth})
            )
        await _clear(d, ref)
    finally:
        await d.redis.aclose()
    return results


async def _clear(d: Dispatcher, ref: QueueRef) -> None:
    pattern = QueueKeys(ref).base.replace("{", "\\{").replace("}", "\\}") + "*"
    keys = [k async for k in d.redis.scan_iter(pattern, count=1000)]
    if keys:
        await d.redis.delete(*keys)


# -- DAG ------------------------------------------------------------------------------------


def dag(
    servers: BenchServers,
    *,
    width: int,
    runs: int,
    workers: int,
    concurrency: int,
    progress: Progress,
) -> Result:
    """Fan-out/fan-in runs (one root, ``width`` steps, one sink), one after another."""
    queue = "bench-dag"
    steps: list[dict[str, Any]] = [{"name": "root", "handler": "noop"}]
    steps += [{"name": f"s{i}", "handler": "noop", "depends_on": ["root"]} for i in range(width)]
    steps.append({"name": "sink", "handler": "noop", "depends_on": [f"s{i}" for i in range(width)]})
    servers.start_workers(workers, concurrency, [queue])
    durations: list[float] = []
    try:
        with servers.client() as c:
            for i in range(runs):
                t = time.perf_counter()
                run_id = c.submit_dag(steps, queue=queue)
                run = c.wait_dag(run_id, timeout=STALL_SECONDS)
                durations.append(time.perf_counter() - t)
                if run.state != "succeeded":
                    raise BenchError(f"DAG run {run_id} ended {run.state}")
                progress(i + 1, runs)
    finally:
        servers.stop_workers()
    total = sum(durations)
    return Result(
        "dag",
        f"1+{width}+1 steps",
        {"steps_per_s": runs * len(steps) / total, **summary_ms(durations)},
        {"width": width, "runs": runs, "workers": workers, "concurrency": concurrency},
    )


# -- worker memory --------------------------------------------------------------------------

#: Seconds a freshly started worker is left alone before its idle RSS is read.
IDLE_SETTLE_SECONDS = 3.0
#: Seconds between two RSS samples while draining.
MEMORY_SAMPLE_SECONDS = 1.0


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB; a :class:`BenchError` when there is none."""
    try:
        return rss_bytes(pid) / 2**20
    except RssUnavailable as exc:
        raise BenchError(str(exc)) from None


def growth_per_100k(samples: list[tuple[int, float]], warmup: int) -> float:
    """MiB per 100,000 tasks: the slope of a least-squares line through the samples
    ``(tasks done, MiB)`` taken after ``warmup`` tasks (0.0 with fewer than two)."""
    points = [(float(n), mib) for n, mib in samples if n >= warmup]
    if len(points) < 2:
        return 0.0
    mx = sum(n for n, _ in points) / len(points)
    my = sum(m for _, m in points) / len(points)
    var = sum((n - mx) ** 2 for n, _ in points)
    if var == 0:
        return 0.0
    slope = sum((n - mx) * (m - my) for n, m in points) / var
    return slope * 100_000


class _Feeder(threading.Thread):
    """Submits ``count`` tasks, 1,000 per call, staying at most ``backlog`` ahead of
    ``done()``; its own thread, so the sampling never waits for a submit call."""

    def __init__(
        self, servers: BenchServers, queue: str, handler: str, count: int, backlog: int, done: Any
    ) -> None:
        super().__init__(name="bench-memory-feeder", daemon=True)
        self._servers, self._queue, self._handler = servers, queue, handler
        self._count, self._backlog, self._done = count, backlog, done
        self.submitted = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            with self._servers.client() as c:
                while self.submitted < self._count and not self.stopping.is_set():
                    if self.submitted - self._done() >= self._backlog:
                        time.sleep(0.01)
                        continue
                    n = min(1000, self._count - self.submitted)
                    c.submit_many([TaskRequest(queue=self._queue, handler=self._handler)] * n)
                    self.submitted += n
        except BaseException as exc:  # reported by the scenario's loop
            self.error = exc


def memory(
    servers: BenchServers,
    *,
    count: int,
    concurrency: int,
    progress: Progress,
    handler: str = "noop",
    backlog: int = 20_000,
    warmup: float = 0.1,
) -> Result:
    """One worker process: its RSS idle after start, then sampled every second while it
    drains ``count`` tasks. Tasks are submitted (1,000 per call, from a thread) while it
    drains, at most ``backlog`` ahead of it, so the queue stays the size of an ordinary
    backlog whatever ``count`` is; the rate is therefore the lower of the submit and the
    drain rates. Growth is the slope of RSS against tasks done over the samples after the
    first ``warmup`` fraction of the run (caches and pools filled)."""
    queue = "bench-memory"
    ref = QueueRef("default", queue)
    servers.start_workers(1, concurrency, [queue])
    pid = servers.worker_pids[0]
    r = servers.redis()
    feeder_r = servers.redis()
    samples: list[tuple[int, float]] = []
    feeder: _Feeder | None = None
    try:
        time.sleep(IDLE_SETTLE_SECONDS)
        idle = rss_mib(pid)
        base = _succeeded(r, ref)
        feeder = _Feeder(
            servers, queue, handler, count, backlog, lambda: _succeeded(feeder_r, ref) - base
        )
        feeder.start()
        first: float | None = None
        last_done, last_change = -1, time.monotonic()
        while True:
            done = _succeeded(r, ref) - base
            now = time.monotonic()
            if done and first is None:
                first = time.perf_counter()
            samples.append((done, rss_mib(pid)))
            if done >= count:
                end = time.perf_counter()
                break
            if feeder.error is not None:
                raise BenchError(f"memory: submitting failed: {feeder.error!r}")
            if done != last_done:
                last_done, last_change = done, now
                progress(done, count)
            elif now - last_change > STALL_SECONDS:
                raise BenchError(f"memory: no task finished for {STALL_SECONDS:g}s ({done})")
            time.sleep(MEMORY_SAMPLE_SECONDS)
        time.sleep(MEMORY_SAMPLE_SECONDS)
        final = rss_mib(pid)
    finally:
        if feeder is not None:
            feeder.stopping.set()
            feeder.join(timeout=STALL_SECONDS)
        r.close()
        feeder_r.close()
        servers.stop_workers()
    progress(count, count)
    assert first is not None
    return Result(
        "memory",
        f"1x{concurrency} {handler}, {count:,} tasks",
        {
            "idle_mib": idle,
            "end_mib": final,
            "peak_mib": max(m for _, m in samples),
            "growth_mib_per_100k": growth_per_100k(samples, int(count * warmup)),
            "tasks_per_s": count / max(end - first, 1e-9),
        },
        {
            "tasks": count,
            "concurrency": concurrency,
            "handler": handler,
            "backlog": backlog,
            "samples": [[n, round(m, 3)] for n, m in samples],
        },
    )
