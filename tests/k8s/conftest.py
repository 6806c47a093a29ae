from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow.config import Settings
from tests.k8s.controlplane import (
    BUILD_HINT,
    ControlPlane,
    ControlPlaneError,
    asset_dir,
    close_api_client,
    missing_assets,
    new_api_client,
    start_control_plane,
)
from tests.k8s.operator_support import install_crds

K8S_DIR = Path(__file__).resolve().parent
UNAVAILABLE_KEY = pytest.StashKey[str | None]()


def required() -> bool:
    return os.environ.get("TASKFLOW_K8S_REQUIRED", "") not in ("", "0", "false")


def external_kubeconfig(pytest_config: pytest.Config) -> Path | None:
    value = pytest_config.getoption("k8s_kubeconfig", default=None) or os.environ.get(
        "TASKFLOW_TEST_KUBECONFIG"
    )
    return Path(value).expanduser() if value else None


def unavailable_reason(pytest_config: pytest.Config) -> str | None:
    if UNAVAILABLE_KEY not in pytest_config.stash:
        pytest_config.stash[UNAVAILABLE_KEY] = _unavailable_reason(pytest_config)
    return pytest_config.stash[UNAVAILABLE_KEY]


def _unavailable_reason(pytest_config: pytest.Config) -> str | None:
    if external_kubeconfig(pytest_config) is not None:
        return None
    try:
        bin_dir = asset_dir()
    except ControlPlaneError as error:
        return f"cannot locate the Kubernetes binaries ({error}); build them with: {BUILD_HINT}"
    missing = missing_assets(bin_dir)
    if not missing:
        return None
    return (
        f"Kubernetes binaries missing in {bin_dir}: {', '.join(missing)}; "
        f"build them with: {BUILD_HINT} "
        "(or set KUBEBUILDER_ASSETS, TASKFLOW_TEST_KUBECONFIG or --k8s-kubeconfig)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    k8s_items = [item for item in items if K8S_DIR in item.path.resolve().parents]
    if not k8s_items:
        return
    reason = unavailable_reason(config)
    for item in k8s_items:
        item.add_marker(pytest.mark.k8s)
        if reason and not required():
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def k8s_control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane | None]:
    if external_kubeconfig(request.config) is not None:
        yield None
        return
    reason = unavailable_reason(request.config)
    if reason and required():
        pytest.fail(f"TASKFLOW_K8S_REQUIRED is set but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)
    try:
        plane = start_control_plane(asset_dir())
    except ControlPlaneError as error:
        message = f"the Kubernetes control plane did not start: {error}"
        raise pytest.fail.Exception(message, pytrace=False) from None
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def k8s_kubeconfig(request: pytest.FixtureRequest, k8s_control_plane: ControlPlane | None) -> Path:
    if k8s_control_plane is not None:
        return k8s_control_plane.kubeconfig
    path = external_kubeconfig(request.config)
    assert path is not None
    if not path.is_file():
        pytest.fail(f"kubeconfig {path} does not exist", pytrace=False)
    return path


@pytest.fixture(scope="session")
def k8s_api(k8s_kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = new_api_client(k8s_kubeconfig)
    yield api
    close_api_client(api)


def namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def k8s_namespace(request: pytest.FixtureRequest, k8s_api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(k8s_api)
    name = namespace_name(request.node.name)
    labels = {"taskflow.dev/test": "true"}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def operator_settings(
    redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch, k8s_api: client.ApiClient
) -> Settings:
    """TaskFlow's CRDs installed, and the test servers in the environment, where the operator
    reads them."""
    install_crds(k8s_api)
    monkeypatch.setenv("TASKFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("TASKFLOW_DATABASE_URL", database_url)
    return Settings.from_env()


@pytest.fixture
def settings(operator_settings: Settings) -> Settings:
    """Engines of the cluster tests use the operator's settings."""
    return operator_settings
