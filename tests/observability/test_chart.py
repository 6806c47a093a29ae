"""The chart's monitoring objects: rendered only when asked for, and the monitors only where
the Prometheus Operator's CRDs exist."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.k8s.controlplane import ControlPlaneError, asset_dir
from tests.observability.test_dashboard import CHART, DASHBOARD

MONITORING = [
    "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions", "monitoring.coreos.com/v1/PodMonitor",
]  # fmt: skip


@pytest.fixture
def helm() -> str:
    try:
        path = asset_dir() / "helm"
    except ControlPlaneError as exc:
        pytest.skip(f"no Kubernetes binaries: {exc}")
    if not path.is_file():
        pytest.skip(f"helm is not built into {asset_dir()}: run bash hack/build-k8s.sh")
    return str(path)


#: The chart has no default connection (monitoring does not depend on it).
CONNECTION = (
    "--set", "connection.redisUrl=redis://redis:6379/0",
    "--set", "connection.databaseUrl=postgresql://taskflow@postgres:5432/taskflow",
)  # fmt: skip


def template(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "taskflow", str(CHART), "--namespace", "tf", *CONNECTION, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def kinds(helm: str, *args: str) -> dict[str, dict[str, object]]:
    result = template(helm, *args)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def test_nothing_for_monitoring_by_default(helm: str) -> None:
    rendered = kinds(helm, *MONITORING)
    assert not [k for k in rendered if k.split("/")[0] in ("ServiceMonitor", "PodMonitor")]
    assert "ConfigMap/taskflow-dashboard" not in rendered


def test_monitors_scrape_the_api_the_operator_and_every_worker(helm: str) -> None:
    rendered = kinds(
        helm, "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.labels.release=prom", *MONITORING,
    )  # fmt: skip
    sm = rendered["ServiceMonitor/taskflow"]
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    selected = sm["spec"]["selector"]["matchLabels"]
    services = [d for k, d in rendered.items() if k.startswith("Service/")]
    assert len(services) == 2  # the API server's and the operator's
    for svc in services:
        assert selected.items() <= svc["metadata"]["labels"].items(), svc["metadata"]
        assert "http" in [p["name"] for p in svc["spec"]["ports"]]
    pm = rendered["PodMonitor/taskflow-workers"]
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "health"  # the workers' port name
    assert pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


def test_monitors_without_the_crds_fail_saying_why(helm: str) -> None:
    result = template(helm, "--set", "metrics.serviceMonitor.enabled=true")
    assert result.returncode != 0
    assert "needs the Prometheus Operator's CRDs" in result.stderr, result.stderr


def test_dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar(helm: str) -> None:
    rendered = kinds(helm, "--set", "metrics.dashboard.enabled=true")
    cm = rendered["ConfigMap/taskflow-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["taskflow.json"]) == json.loads(DASHBOARD.read_text())


def test_a_bad_scrape_interval_is_refused_naming_it(helm: str) -> None:
    result = template(helm, "--set", "metrics.serviceMonitor.interval=often")
    assert result.returncode != 0
    assert "metrics/serviceMonitor/interval" in result.stderr or "interval" in result.stderr
