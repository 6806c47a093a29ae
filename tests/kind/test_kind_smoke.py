from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.k8s.controlplane import close_api_client, new_api_client

DOCKER_INFO_TIMEOUT = 10.0


def docker_engine_unreachable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "the docker client is not installed"
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return "no Docker engine socket at /var/run/docker.sock and DOCKER_HOST is unset"
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_INFO_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {DOCKER_INFO_TIMEOUT:.0f}s"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"`docker info` failed: {lines[-1] if lines else f'exit code {result.returncode}'}"
    return None


_UNREACHABLE = docker_engine_unreachable()

pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(
        _UNREACHABLE is not None, reason=f"kind needs a Docker engine: {_UNREACHABLE}"
    ),
]


def test_kind_cluster_has_a_ready_node(kind_cluster: Any) -> None:
    api_client = new_api_client(Path(kind_cluster.kubeconfig_path))
    try:
        nodes = client.CoreV1Api(api_client).list_node().items
    finally:
        close_api_client(api_client)
    ready = [
        node
        for node in nodes
        if node.status
        and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]
    assert ready, f"no Ready node among the {len(nodes)} nodes of the kind cluster"
