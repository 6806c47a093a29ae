"""The manifests the README points to are accepted by a real API server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubernetes import client

from tests.k8s.controlplane import asset_dir
from tests.k8s.operator_support import install_crds

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "k8s"


def test_example_manifests_pass_server_side_validation(
    k8s_api: client.ApiClient, k8s_kubeconfig: Path, k8s_namespace: str
) -> None:
    install_crds(k8s_api)
    result = subprocess.run(
        [
            str(asset_dir() / "kubectl"),
            f"--kubeconfig={k8s_kubeconfig}",
            "apply",
            "--dry-run=server",
            "-n",
            k8s_namespace,
            "-f",
            str(EXAMPLES),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "taskqueue.taskflow.dev/emails created (server dry run)" in result.stdout
    assert "task.taskflow.dev/welcome-alice created (server dry run)" in result.stdout
    assert "dagrun.taskflow.dev/thumbnail created (server dry run)" in result.stdout
