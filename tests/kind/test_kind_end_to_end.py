"""The real-node end to end (tests/e2e_cluster/scenario.py) on a kind cluster, where a Docker
engine exists: images built with `docker build` from the two Dockerfiles and loaded into kind,
Redis and PostgreSQL on the kind network's gateway address, where the pods reach them."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskflow.embedded import EmbeddedRedis
from tests.e2e_cluster.scenario import Cluster, postgres_for_subnet, run_end_to_end
from tests.k8s.controlplane import REPO_ROOT, asset_dir
from tests.kind.test_kind_smoke import pytestmark as kind_marks

pytestmark = [*kind_marks, pytest.mark.slow]

IMAGES = {
    "api": ("taskflow:e2e", "Dockerfile"),
    "worker": ("taskflow-worker:e2e", "worker-image/Dockerfile"),
}
KIND_REPORT = REPO_ROOT / "build" / "e2e-kind" / "report.txt"


def tool(name: str) -> str:
    built = asset_dir() / name
    path = str(built) if built.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is neither on PATH nor built by hack/build-k8s.sh")
    return path


def kind_network() -> tuple[str, str]:
    """Gateway address and subnet (IPv4) of the `kind` Docker network."""
    out = subprocess.run(
        ["docker", "network", "inspect", "kind", "--format",
         "{{range .IPAM.Config}}{{.Gateway}} {{.Subnet}}\n{{end}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and ":" not in parts[0]:
            return parts[0], parts[1]
    raise AssertionError(f"no IPv4 gateway on the kind network: {out!r}")


@pytest.fixture(scope="session")
def kind_images(kind_cluster: Any) -> dict[str, str]:
    for reference, dockerfile in IMAGES.values():
        subprocess.run(
            ["docker", "build", "-q", "-t", reference, "-f", dockerfile, "."],
            cwd=REPO_ROOT, check=True, capture_output=True, timeout=1200,
        )  # fmt: skip
        kind_cluster.load_docker_image(reference)
    return {name: reference for name, (reference, _) in IMAGES.items()}


@pytest.fixture
def kind_e2e_cluster(kind_cluster: Any, kind_images: dict[str, str]) -> Iterator[Cluster]:
    gateway, subnet = kind_network()
    directory = Path(tempfile.mkdtemp(prefix="taskflow-kind-data-"))
    try:
        with (
            EmbeddedRedis(directory / "redis", host=gateway, persistent=False) as redis,
            postgres_for_subnet(directory / "postgres", gateway, subnet) as postgres,
        ):
            yield Cluster(
                kubeconfig=Path(kind_cluster.kubeconfig_path),
                kubectl=tool("kubectl"),
                helm=tool("helm"),
                api_image=kind_images["api"],
                worker_image=kind_images["worker"],
                redis_url=redis.url,
                database_url=postgres.url,
                database_url_here=postgres.url,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_helm_install_runs_tasks_on_kind(kind_e2e_cluster: Cluster) -> None:
    run_end_to_end(kind_e2e_cluster, KIND_REPORT)
