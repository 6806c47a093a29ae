"""The Helm chart lints, renders, and everything it renders is accepted by a real API server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.k8s.controlplane import asset_dir
from tests.k8s.operator_support import install_crds

CHART = Path(__file__).resolve().parents[2] / "helm" / "taskflow"
#: The chart has no default URLs (they would carry a default password): tests give them.
URLS = [
    "--set", "connection.redisUrl=redis://redis:6379/0",
    "--set", "connection.databaseUrl=postgresql://taskflow@postgres:5432/taskflow",
]  # fmt: skip


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
    result = run(helm, "lint", str(CHART), *URLS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        URLS,
        [*URLS, "--set", "operator.keda=true", "--set", "api.token=s3cret"],
        ["--set", "connection.existingSecret=mine", "--set", "api.enabled=false"],
        [
            *URLS, "--set", "operator.watchNamespaces[0]={namespace}",
            "--set", "operator.peeringName=a",
        ],
        [
            "--set", "connection.existingSecret=mine", "--set", "api.auth.existingSecret=tok",
            "--set", "api.auth.tokensSecret=tokens", "--set", "api.tls.enabled=true",
            "--set", "api.tls.requireClientCert=true", "--set", "api.reflection=false",
            "--set", "networkPolicy.workerEgress[0].ports[0].port=443",
            "--set", "networkPolicy.redis.peers[0].ipBlock.cidr=10.0.0.0/8",
        ],
        [*URLS, "--set", "networkPolicy.enabled=false", "--set", "api.auth.enabled=false"],
    ],
)  # fmt: skip
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
    result = run(helm, "template", "taskflow", str(CHART), *URLS, *values)
    assert result.returncode != 0, result.stdout
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert expected.replace(".", "/") in result.stderr or expected in result.stderr, result.stderr


def test_existing_secret_needs_no_urls(helm: str) -> None:
    result = run(
        helm, "template", "taskflow", str(CHART), "--set", "connection.existingSecret=mine",
        "--set", "connection.redisUrl=", "--set", "connection.databaseUrl=",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# -- secure defaults ---------------------------------------------------------------------------


def render(helm: str, *values: str) -> list[dict[str, Any]]:
    result = run(helm, "template", "taskflow", str(CHART), "--namespace", "tf", *values)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def named(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def api_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = named(docs, "Deployment")["taskflow-api"]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_values_hold_no_password_and_no_url() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    for text in strings(values):
        assert "://" not in text and "@" not in text, text
    assert values["connection"] == {"existingSecret": "", "redisUrl": "", "databaseUrl": ""}
    assert values["api"]["token"] == ""


def test_the_chart_needs_a_connection_rather_than_inventing_one(helm: str) -> None:
    result = run(helm, "template", "taskflow", str(CHART))
    assert result.returncode != 0
    assert "connection" in result.stderr


def test_default_install_requires_a_generated_token(helm: str) -> None:
    docs = render(helm, *URLS)
    secret = named(docs, "Secret")["taskflow-api-token"]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 40 and token.isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    env = {e["name"]: e for e in api_container(docs)["env"]}
    ref = env["TASKFLOW_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "taskflow-api-token", "key": "token"}
    # Each fresh render draws a new token; an upgrade keeps the stored one (lookup).
    again = named(render(helm, *URLS), "Secret")["taskflow-api-token"]
    assert again["data"]["token"] != secret["data"]["token"]
    # The connection Secret holds what was given, nothing else.
    connection = named(docs, "Secret")["taskflow-connection"]
    assert set(connection["stringData"]) == {"redisUrl", "databaseUrl"}


def test_an_existing_token_secret_is_used_and_none_generated(helm: str) -> None:
    docs = render(
        helm, "--set", "connection.existingSecret=conn", "--set", "api.auth.existingSecret=tok",
        "--set", "api.auth.existingSecretKey=admin",
    )  # fmt: skip
    assert named(docs, "Secret") == {}
    env = {e["name"]: e for e in api_container(docs)["env"]}
    ref = env["TASKFLOW_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tok", "key": "admin"}


def test_network_policies_by_default(helm: str) -> None:
    docs = render(helm, *URLS, "--set", "networkPolicy.workerNamespaces={team-a}")
    policies = {
        (d["metadata"].get("namespace", "tf"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "NetworkPolicy"
    }
    assert set(policies) == {
        ("tf", "taskflow-api"),
        ("tf", "taskflow-operator"),
        ("tf", "taskflow-workers"),
        ("team-a", "taskflow-workers"),
    }
    workers = policies[("team-a", "taskflow-workers")]["spec"]
    assert workers["policyTypes"] == ["Ingress", "Egress"]
    ports = sorted(p["port"] for rule in workers["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432, 6379, 50051]
    to_api = next(r for r in workers["egress"] if r["ports"][0]["port"] == 50051)
    assert to_api["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    operator = policies[("tf", "taskflow-operator")]["spec"]
    assert {p["port"] for r in operator["egress"] for p in r["ports"]} >= {443, 6443}


def test_tls_with_cert_manager(helm: str) -> None:
    docs = render(
        helm, *URLS, "--set", "api.tls.enabled=true", "--set", "api.tls.requireClientCert=true",
        "--set", "api.tls.certManager.enabled=true",
        "--set", "api.tls.certManager.issuerRef.name=internal-ca",
    )  # fmt: skip
    certificate = named(docs, "Certificate")["taskflow-api"]["spec"]
    assert certificate["secretName"] == "taskflow-api-tls"
    assert "taskflow-api.tf.svc" in certificate["dnsNames"]
    assert certificate["issuerRef"]["name"] == "internal-ca"
    args = api_container(docs)["args"]
    assert "--tls-cert=/etc/taskflow/tls/tls.crt" in args
    assert "--tls-client-ca=/etc/taskflow/tls/ca.crt" in args
    result = run(
        helm, "template", "taskflow", str(CHART), *URLS, "--set", "api.tls.enabled=true",
        "--set", "api.tls.certManager.enabled=true",
    )  # fmt: skip
    assert result.returncode != 0 and "issuerRef.name" in result.stderr


def test_an_upgrade_keeps_the_generated_token(
    helm: str, k8s_api: client.ApiClient, k8s_kubeconfig: Path, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_secret(
        k8s_namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="taskflow-api-token"),
            string_data={"token": "the-token-of-the-first-install"},
        ),
    )
    # --dry-run=server makes `lookup` read the cluster, as an upgrade does.
    result = run(
        helm, "template", "taskflow", str(CHART), "--namespace", k8s_namespace, *URLS,
        "--dry-run=server", f"--kubeconfig={k8s_kubeconfig}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    secret = named(docs, "Secret")["taskflow-api-token"]
    assert base64.b64decode(secret["data"]["token"]) == b"the-token-of-the-first-install"
