"""Where a submit's time goes: each hop of the path measured alone, interleaved, in one run.

    python benchmarks/submit_breakdown.py [--rounds 10] [--per-round 100]

Starts the benchmark servers (embedded Redis and PostgreSQL with fsync on, ``taskflow api``,
one ``taskflow worker``) and, round after round so that the machine's load hits every hop
alike, times:

- **gRPC round trip**: a health check through the same server (no store behind it);
- **PostgreSQL insert + commit**: one task inserted with the statement ``SubmitTask`` runs,
  from this process, committed on its own (the ``fdatasync`` is in it);
- **Redis enqueue**: one task handed to Redis with the script ``SubmitTask`` runs;
- **SubmitTask**: the whole call, as a client sees it;
- **reply → handler start**: from the moment the reply arrived to the instant the handler
  started (the worker's wake-up, claim and start);
- **submit → handler start**: the sum a user sees.

Prints the p50 and p99 of each and the share of SubmitTask's p50 that the three hops explain;
``--json FILE`` writes the figures too. The peers' whole submit is one Redis command, the
"Redis enqueue" row's order of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from taskflow import keys as K
from taskflow.bench.servers import BenchServers, wait_until
from taskflow.bench.stats import summary_ms
from taskflow.config import Settings
from taskflow.engine import Engine, new_enqueue_item
from taskflow.keys import QueueRef
from taskflow.models import TaskSubmission, utcnow
from taskflow.store.tasks import NewTask

QUEUE = "bench-breakdown"
IDLE_QUEUE = "bench-breakdown-idle"  # no worker reads it: enqueues pile up harmlessly


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


class Hops:
    """The engine's own store and dispatcher, driven from this process."""

    def __init__(self, servers: BenchServers) -> None:
        self.loop = asyncio.new_event_loop()
        settings = Settings(redis_url=servers.redis_url, database_url=servers.database_url)
        self.engine = self.loop.run_until_complete(Engine.connect(settings))
        self.ref = QueueRef("default", IDLE_QUEUE)
        self.defaults = self.loop.run_until_complete(self.engine.defaults_for(self.ref))

    def _new(self) -> NewTask:
        spec = TaskSubmission(queue=IDLE_QUEUE, handler="noop")
        return self.engine.new_task(spec, self.defaults, utcnow())

    def insert(self) -> float:
        task = self._new()
        t = time.perf_counter()
        self.loop.run_until_complete(self.engine.store.insert([task]))
        return time.perf_counter() - t

    def enqueue(self) -> float:
        item = new_enqueue_item(self._new())
        t = time.perf_counter()
        self.loop.run_until_complete(self.engine.dispatcher.enqueue(self.ref, [item]))
        return time.perf_counter() - t

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.close())
        self.loop.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=100, help="calls per hop and round (100)")
    p.add_argument("--pause", type=float, default=0.005, help="seconds between submits (0.005)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = p.parse_args()
    console = Console(stderr=True)
    samples: dict[str, list[float]] = {
        name: []
        for name in ("grpc", "insert", "enqueue", "submit", "reply_to_start", "submit_to_start")
    }
    root = Path(tempfile.mkdtemp(prefix="taskflow-breakdown-"))
    load_before = load_average()
    with BenchServers(root) as servers:
        servers.start_workers(1, 100, [QUEUE])
        r = servers.redis()
        hops = Hops(servers)
        channel = grpc.insecure_channel(servers.addr)
        health = health_pb2_grpc.HealthStub(channel)
        try:
            with servers.client() as c:
                c.submit(QUEUE, "noop")  # connections set up outside the figures
                health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                for rnd in range(args.rounds):
                    for _ in range(args.per_round):
                        t = time.perf_counter()
                        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                        samples["grpc"].append(time.perf_counter() - t)
                    samples["insert"] += [hops.insert() for _ in range(args.per_round)]
                    samples["enqueue"] += [hops.enqueue() for _ in range(args.per_round)]
                    r.delete(K.BENCH_STARTED)
                    sent: dict[str, tuple[float, float]] = {}
                    for _ in range(args.per_round):
                        wall, t = time.time(), time.perf_counter()
                        task_id = c.submit(QUEUE, "stamp")
                        took = time.perf_counter() - t
                        samples["submit"].append(took)
                        sent[task_id] = (wall, wall + took)
                        time.sleep(args.pause)  # the worker is idle again: one task at a time
                    wait_until(
                        lambda: int(r.hlen(K.BENCH_STARTED)) >= args.per_round,
                        60.0,
                        "every task of the round starting",
                    )
                    raw: dict[bytes, bytes] = r.hgetall(K.BENCH_STARTED)  # type: ignore[assignment]
                    for key, value in raw.items():
                        before, replied = sent[key.decode()]
                        started = float(value)
                        samples["reply_to_start"].append(max(0.0, started - replied))
                        samples["submit_to_start"].append(started - before)
                    console.print(f"round {rnd + 1}/{args.rounds} done", highlight=False)
        finally:
            channel.close()
            hops.close()
            r.close()
    load_after = load_average()
    figures = {name: summary_ms(values) for name, values in samples.items()}
    labels = {
        "grpc": "gRPC round trip (health check)",
        "insert": "PostgreSQL insert + commit",
        "enqueue": "Redis enqueue (script)",
        "submit": "SubmitTask, whole call",
        "reply_to_start": "reply → handler start",
        "submit_to_start": "submit → handler start",
    }
    table = Table(title=f"submit breakdown (load average {load_before} → {load_after})")
    for col in ("hop", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "hop" else "right")
    for name, label in labels.items():
        f = figures[name]
        table.add_row(label, f"{f['p50_ms']:.3f}", f"{f['p99_ms']:.3f}")
    Console().print(table)
    hops_p50 = sum(figures[n]["p50_ms"] for n in ("grpc", "insert", "enqueue"))
    share = hops_p50 / figures["submit"]["p50_ms"]
    print(f"the three hops' p50s add up to {share:.0%} of SubmitTask's p50")
    if args.json:
        doc = {"load_average": [load_before, load_after], "figures": figures, "labels": labels}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
