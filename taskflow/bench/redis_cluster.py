"""A real Redis Cluster of N masters (no replicas) from the bundled ``redis-server``, for the
cluster tests and the 1-vs-3-master benchmark.

Each master is its own ``redis-server --cluster-enabled yes`` process on a free port, with
its files under ``root``; ``redis-cli --cluster create`` splits the 16,384 slots among them.
``url`` is the ``redis+cluster://`` URL TaskFlow takes for a cluster (any node's address).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from taskflow.bench.processes import Started, terminate
from taskflow.embedded import find_redis_server, free_port, port_unavailable

START_DEADLINE = 60.0


class ClusterError(Exception):
    pass


class EmbeddedRedisCluster(Started):
    def __init__(self, root: Path, masters: int = 3, host: str = "127.0.0.1") -> None:
        if masters < 1:
            raise ValueError("masters must be at least 1")
        self.root = root
        self.masters = masters
        self.host = host
        self.ports: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://{self.host}:{self.ports[0]}"

    def start(self) -> None:
        server = find_redis_server()
        cli = server.parent / "redis-cli"
        if not cli.exists():
            found = shutil.which("redis-cli")
            if found is None:
                raise ClusterError(f"no redis-cli beside {server} or on PATH")
            cli = Path(found)
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(self.masters):
            port = self._port()
            d = self.root / f"node-{port}"
            d.mkdir()
            log = (d / "redis.log").open("ab")
            self._procs.append(
                subprocess.Popen(
                    [
                        str(server),
                        "--port",
                        str(port),
                        "--bind",
                        self.host,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--dir",
                        str(d),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
            self.ports.append(port)
        for port in self.ports:
            self._wait(lambda port=port: self._ping(port), f"node :{port} answering")
        if self.masters == 1:
            # redis-cli --cluster create wants three masters; one node takes every slot.
            r = redis.Redis(host=self.host, port=self.ports[0])
            r.execute_command("CLUSTER", "ADDSLOTS", *range(16384))  # type: ignore[no-untyped-call]
            r.close()
        else:
            subprocess.run(
                [
                    str(cli),
                    "--cluster",
                    "create",
                    *(f"{self.host}:{p}" for p in self.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=START_DEADLINE,
            )
        for port in self.ports:
            self._wait(lambda port=port: self._state_ok(port), f"node :{port} cluster_state:ok")

    def _port(self) -> int:
        """A free port whose cluster bus port (+10000) is free too and below 65536."""
        for _ in range(200):
            port = free_port(self.host)
            if (
                port <= 55535
                and port not in self.ports
                and port_unavailable(self.host, port + 10000) is None
            ):
                return port
        raise ClusterError("no free port pair (port and port + 10000) found")

    def _ping(self, port: int) -> bool:
        try:
            r = redis.Redis(host=self.host, port=port, socket_timeout=1)
            try:
                return bool(r.ping())
            finally:
                r.close()
        except redis.RedisError:
            return False

    def _state_ok(self, port: int) -> bool:
        r = redis.Redis(host=self.host, port=port, socket_timeout=1)
        try:
            info = r.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        finally:
            r.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def _wait(self, check: object, what: str) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while not check():  # type: ignore[operator]
            for p in self._procs:
                if p.poll() is not None:
                    raise ClusterError(f"a cluster node exited ({p.returncode}); see {self.root}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} did not happen within {START_DEADLINE:g}s")
            time.sleep(0.05)

    def flushall(self) -> None:
        for port in self.ports:
            r = redis.Redis(host=self.host, port=port)
            try:
                r.flushall()
            finally:
                r.close()

    def stop(self) -> None:
        terminate(self._procs, grace=10)
        self._procs = []
