"""The Helm chart lints, renders, and everything it renders is accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kubernetes import client

from tests.k8s.controlplane import asset_dir
from tests.k8s.operator_support import install_crds

CHART = Path(__file__).resolve().parents[2] / "helm" / "taskflow"


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def helm() -> str:
    path = asset_dir() / "helm"
    if not path.is_file():
        pytest.skip(f"helm is not built into {asset_dir()}: run bash hack/build-k8s.sh")
    return str(path)


def test_chart_lints(helm: str) -> None:
    result = run(helm, "lint", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "operator.keda=true", "--set", "api.token=s3cret"],
        ["--set", "connection.existingSecret=mine", "--set", "api.enabled=false"],
        ["--set", "operator.watchNamespaces[0]={namespace}", "--set", "operator.peeringName=a"],
    ],
)
def test_rendered_chart_passes_server_side_validation(
    helm: str,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    values: list[str],
) -> None:
    install_crds(k8s_api)  # a dry run cannot check objects whose CRD is in the same batch
    rendered = run(
        helm, "template", "taskflow", str(CHART), "--namespace", k8s_namespace, "--include-crds",
        *(v.format(namespace=k8s_namespace) for v in values),
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    applied = run(
        str(asset_dir() / "kubectl"), f"--kubeconfig={k8s_kubeconfig}", "apply",
        "--dry-run=server", "-n", k8s_namespace, "-f", "-",
        stdin=rendered.stdout,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/taskflow-operator created (server dry run)" in applied.stdout


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["--set", "api.replicas=banana"], "api.replicas"),
        (["--set", "connection.redisUrl="], "connection.redisUrl"),
        (["--set", "connection.databaseUrl=mysql://db/x"], "connection.databaseUrl"),
        (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
        (["--set", "operator.watchNamespaces[0]=Not_A_Namespace"], "operator.watchNamespaces"),
        (["--set", "api.replica=3"], "replica"),
    ],
)
def test_values_schema_rejects_bad_values_naming_them(
    helm: str, values: list[str], expected: str
) -> None:
    result = run(helm, "template", "taskflow", str(CHART), *values)
    assert result.returncode != 0, result.stdout
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert expected.replace(".", "/") in result.stderr or expected in result.stderr, result.stderr


def test_existing_secret_needs_no_urls(helm: str) -> None:
    result = run(
        helm, "template", "taskflow", str(CHART), "--set", "connection.existingSecret=mine",
        "--set", "connection.redisUrl=", "--set", "connection.databaseUrl=",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
