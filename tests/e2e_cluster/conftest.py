"""The real-node tier (``-m realnode``): a control plane whose API server listens on a bridge,
one real kubelet with containerd beside a kwok node, the data plane (Redis, PostgreSQL) on the
bridge's gateway address where pods reach it, and the images of hack/build-images.sh.

There is no kube-proxy and no cluster DNS on this tier: pods address Redis, PostgreSQL and the
API server by IP (the operator is told the API server's address through the chart's
``operator.env``), and the test reaches the TaskFlow API through ``kubectl port-forward``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.e2e_cluster.scenario import REPORT, Cluster, postgres_for_subnet
from tests.k8s.controlplane import (
    ControlPlane,
    ControlPlaneError,
    asset_dir,
    start_control_plane,
)
from tests.k8s.realnode import (
    Image,
    RealNode,
    built_images,
    host_unavailable_reason,
    images_unavailable_reason,
    restore_stale_tiers,
    tier_lock,
    tools_unavailable_reason,
)

E2E_DIR = Path(__file__).resolve().parent
UNAVAILABLE_KEY = pytest.StashKey[str | None]()
HOST_KEY = pytest.StashKey[str | None]()
LOADED_AT = time.time()  # this conftest loads as the session collects: a report newer is ours
IMAGES_KEY = pytest.StashKey[dict[str, Image]]()
NODE_BINARIES = ("kubelet", "kubectl", "helm")


def required() -> bool:
    return os.environ.get("TASKFLOW_REALNODE_REQUIRED", "") not in ("", "0", "false")


def host_reason_of(config: pytest.Config) -> str | None:
    if HOST_KEY not in config.stash:
        config.stash[HOST_KEY] = host_unavailable_reason()
    return config.stash[HOST_KEY]


def unavailable_reason(config: pytest.Config) -> str | None:
    if UNAVAILABLE_KEY not in config.stash:
        config.stash[UNAVAILABLE_KEY] = _unavailable_reason(config)
    return config.stash[UNAVAILABLE_KEY]


def _unavailable_reason(config: pytest.Config) -> str | None:
    """A missing build (binaries, images) fails the tier when it is required; what the host
    lacks (root, namespaces, cgroups) always skips it."""
    reason = tools_unavailable_reason()
    if reason:
        return reason
    try:
        bin_dir = asset_dir()
        images = built_images()
    except ControlPlaneError as error:
        return str(error)
    missing = [name for name in NODE_BINARIES if not (bin_dir / name).is_file()]
    if missing:
        return f"{', '.join(missing)} not built into {bin_dir}; run: bash hack/build-k8s.sh"
    config.stash[IMAGES_KEY] = images
    return images_unavailable_reason(images)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = [item for item in items if E2E_DIR in item.path.resolve().parents]
    if not tier:
        return
    host_reason = host_reason_of(config)
    reason = unavailable_reason(config)
    for item in tier:
        item.add_marker(pytest.mark.realnode)
        if host_reason:
            item.add_marker(pytest.mark.skip(reason=f"real-node tier: {host_reason}"))
        elif reason and not required():
            item.add_marker(pytest.mark.skip(reason=f"real-node tier: {reason}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT.is_file() and REPORT.stat().st_mtime >= LOADED_AT:
        terminalreporter.section("real-node end to end")
        terminalreporter.write(REPORT.read_text())


@dataclass
class RealCluster:
    plane: ControlPlane
    node: RealNode
    images: dict[str, Image]

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig


@pytest.fixture(scope="session")
def real_cluster(request: pytest.FixtureRequest) -> Iterator[RealCluster]:
    host_reason = host_reason_of(request.config)
    if host_reason:
        pytest.skip(host_reason)
    reason = unavailable_reason(request.config)
    if reason:
        if required():
            pytest.fail(f"TASKFLOW_REALNODE_REQUIRED is set but {reason}", pytrace=False)
        pytest.skip(reason)
    images = request.config.stash[IMAGES_KEY]
    bin_dir = asset_dir()
    with tier_lock():
        restore_stale_tiers()
        node = RealNode(bin_dir, images)
        try:
            node.prepare()
            plane = start_control_plane(
                bin_dir, nodes=1, address=node.gateway, real_nodes=(node.name,)
            )
            try:
                try:
                    node.start(plane)
                except ControlPlaneError as error:
                    pytest.fail(
                        f"the real node did not start: {error}\n{node.logs()}", pytrace=False
                    )
                yield RealCluster(plane, node, images)
            finally:
                node.drain(plane)
                node.stop()
                plane.stop()
        finally:
            node.restore_host()


@dataclass
class DataPlane:
    redis: EmbeddedRedis
    postgres: EmbeddedPostgres


@pytest.fixture(scope="session")
def node_data_plane(real_cluster: RealCluster) -> Iterator[DataPlane]:
    """Redis and PostgreSQL on the bridge's gateway address, open to the pod subnet."""
    host = real_cluster.node.gateway
    # Inside the node's root: a killed run's servers are found and stopped with the node's.
    directory = real_cluster.node.path("data")
    try:
        with (
            EmbeddedRedis(directory / "redis", host=host, persistent=False) as redis,
            postgres_for_subnet(directory / "postgres", host, str(real_cluster.node.subnet)) as pg,
        ):
            yield DataPlane(redis, pg)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def node_cluster(real_cluster: RealCluster, node_data_plane: DataPlane) -> Cluster:
    plane, node = real_cluster.plane, real_cluster.node
    bin_dir = asset_dir()
    api_env = [
        # No kube-proxy: the operator reaches the API server at its address on the bridge.
        ("KUBERNETES_SERVICE_HOST", node.gateway),
        ("KUBERNETES_SERVICE_PORT", str(plane.api_port)),
    ]
    values = []
    for index, (name, value) in enumerate(api_env):
        values += [
            "--set",
            f"operator.env[{index}].name={name}",
            "--set-string",
            f"operator.env[{index}].value={value}",
        ]
    return Cluster(
        kubeconfig=plane.kubeconfig,
        kubectl=str(bin_dir / "kubectl"),
        helm=str(bin_dir / "helm"),
        api_image=real_cluster.images["api"].reference,
        worker_image=real_cluster.images["worker"].reference,
        redis_url=node_data_plane.redis.url,
        database_url=node_data_plane.postgres.url,
        database_url_here=node_data_plane.postgres.url,
        helm_values=values,
    )
