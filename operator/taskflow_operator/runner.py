"""``taskflow operator``: flags → ``OperatorConfig`` → ``kopf.operator``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

import kopf

from taskflow.logs import configure_logging
from taskflow_operator import peering
from taskflow_operator.handlers import build_registry
from taskflow_operator.settings import OperatorConfig


def parse_args(argv: Sequence[str]) -> tuple[OperatorConfig, argparse.Namespace]:
    d = OperatorConfig()
    p = argparse.ArgumentParser(prog="taskflow operator", description="run the TaskFlow operator")
    p.add_argument("--kubeconfig", type=Path, default=None, help="(in-cluster service account)")
    p.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        default=[],
        help="serve only this namespace (repeatable; default: every namespace)",
    )
    p.add_argument(
        "--http-port", type=int, default=d.http_port, help="/metrics and backlog (8090; 0: off)"
    )
    p.add_argument(
        "--http-host",
        default=d.http_host,
        help="address of the HTTP endpoints (127.0.0.1; 0.0.0.0 in a pod)",
    )
    p.add_argument(
        "--liveness",
        default=None,
        help="kopf liveness endpoint URL (http://<--http-host>:8081/healthz; empty disables)",
    )
    p.add_argument("--public-url", default=d.public_url, help="how KEDA reaches --http-port")
    p.add_argument(
        "--peering",
        default=d.peering_name,
        help="kopf peering name, created when missing (taskflow); the chart uses the release's",
    )
    p.add_argument("--standalone", action="store_true", help="no peering / leader election")
    p.add_argument(
        "--priority",
        type=int,
        default=d.priority,
        help="peering priority: the highest leads (default: the one running longest)",
    )
    p.add_argument("--task-poll", type=float, default=d.task_poll_seconds, help="seconds (2)")
    p.add_argument(
        "--mirror-db-pool",
        type=int,
        default=d.mirror_pool_size,
        help="PostgreSQL connections of the Task mirror, apart from submits' (2)",
    )
    p.add_argument(
        "--housekeeping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the recovery sweep and retention while leading (default on)",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    a = p.parse_args(list(argv))
    if a.mirror_db_pool < 1:
        p.error("--mirror-db-pool: must be at least 1")
    liveness = f"http://{a.http_host}:8081/healthz" if a.liveness is None else a.liveness
    config = OperatorConfig(
        kubeconfig=a.kubeconfig,
        namespaces=tuple(a.namespaces),
        http_port=a.http_port,
        http_host=a.http_host,
        liveness_endpoint=liveness,
        public_url=a.public_url,
        peering_name=a.peering,
        standalone=a.standalone,
        priority=a.priority,
        task_poll_seconds=a.task_poll,
        mirror_pool_size=a.mirror_db_pool,
        housekeeping=a.housekeeping,
    )
    return config, a


async def serve(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run the operator in the current event loop until ``stop_flag`` (or a signal)."""
    await kopf.operator(
        registry=build_registry(config),
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        standalone=config.standalone,
        peering_name=None if config.standalone else config.peering_name,
        identity=peering.identity(),  # type: ignore[arg-type]  # kopf's Identity is a NewType
        priority=config.priority,
        liveness_endpoint=config.liveness_endpoint or None,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        memo=kopf.Memo(),
    )


def run(argv: Sequence[str] = ()) -> int:
    config, args = parse_args(argv)
    configure_logging(args.log_level, json_format=args.log_format == "json")
    asyncio.run(serve(config))
    return 0
