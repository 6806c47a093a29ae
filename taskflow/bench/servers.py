"""The system under test: embedded Redis and PostgreSQL, ``taskflow api`` and workers, each
its own process, as ``taskflow dev`` runs them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import redis

from taskflow import eventloop
from taskflow import keys as K
from taskflow.bench.processes import Started, terminate
from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from taskflow.queue.dispatch import CLUSTER_SCHEME, is_cluster
from taskflow.store import apply_migrations
from taskflow_client import Client

APP = "taskflow_worker.bench_handlers:router"
START_DEADLINE = 120.0


class BenchError(Exception):
    """The benchmark could not run (a server did not start, a scenario stalled)."""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.02)


class BenchServers(Started):
    """Redis, PostgreSQL and the API server for the whole suite; workers per scenario."""

    def __init__(self, root: Path, *, redis_url: str | None = None) -> None:
        self.root = root
        self._external_redis = redis_url
        self._stack = ExitStack()
        self._api: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self.redis_url = ""
        self.database_url = ""
        self.addr = ""

    @property
    def env(self) -> dict[str, str]:
        # The caller's TaskFlow settings stay out, but for the event loop: it is what an A/B
        # run of the same benchmark changes (TASKFLOW_EVENT_LOOP=uvloop).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TASKFLOW_") or k == eventloop.ENV
        }
        env["TASKFLOW_REDIS_URL"] = self.redis_url
        env["TASKFLOW_DATABASE_URL"] = self.database_url
        return env

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._external_redis:
            self.redis_url = self._external_redis
        else:
            r = self._stack.enter_context(EmbeddedRedis(self.root / "redis", persistent=False))
            self.redis_url = r.url
        pg = self._stack.enter_context(EmbeddedPostgres(self.root / "pg"))
        self.database_url = pg.url
        asyncio.run(apply_migrations(self.database_url))
        self.addr = f"127.0.0.1:{free_port()}"
        self._api = self._spawn(
            "api",
            [
                "api",
                "--host",
                "127.0.0.1",
                "--grpc-port",
                self.addr.rsplit(":", 1)[1],
                "--http-port",
                str(free_port()),
            ],
        )
        with self.client() as c:

            def answers() -> bool:
                self._check_alive()
                try:
                    c.queue_stats("bench-ready")
                    return True
                except Exception:
                    return False

            wait_until(answers, START_DEADLINE, "the API server answering")

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.addr, timeout=timeout)

    def redis(self) -> redis.Redis:
        """A plain client of the dispatch Redis (a cluster client for ``redis+cluster://``)."""
        if is_cluster(self.redis_url):
            rest = self.redis_url[len(CLUSTER_SCHEME) :]
            return cast(redis.Redis, redis.RedisCluster.from_url(f"redis://{rest}"))
        return redis.Redis.from_url(self.redis_url)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        self._stack.callback(log.close)
        return subprocess.Popen(
            [sys.executable, "-m", "taskflow", "--log-level", "WARNING", *argv],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _check_alive(self) -> None:
        for p in [self._api, *self._workers]:
            if p is not None and p.poll() is not None:
                raise BenchError(
                    f"a TaskFlow process exited with status {p.returncode} (see {self.root}/*.log)"
                )

    def start_workers(self, count: int, concurrency: int, queues: list[str]) -> None:
        """Start ``count`` worker processes and return once each has announced itself."""
        self.stop_workers()
        argv = ["worker", "--app", APP, "--concurrency", str(concurrency)]
        for q in queues:
            argv += ["--queue", q]
        self._workers = [self._spawn(f"worker-{i}", argv) for i in range(count)]
        r = self.redis()

        def announced() -> bool:
            self._check_alive()
            return int(r.hlen(K.WORKERS)) >= count

        try:
            wait_until(announced, START_DEADLINE, f"{count} worker(s) announcing themselves")
        finally:
            r.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers ``start_workers`` started."""
        return [p.pid for p in self._workers]

    def stop_workers(self) -> None:
        terminate(self._workers, grace=30)
        self._workers = []
        if self.redis_url:
            r = self.redis()
            try:
                r.delete(K.WORKERS)
            finally:
                r.close()

    def stop(self) -> None:
        self.stop_workers()
        if self._api is not None:
            terminate([self._api], grace=30)
        self._api = None
        self._stack.close()
