"""Command-line options for the Kubernetes test tier (tests/k8s)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskflow-k8s", "TaskFlow Kubernetes test tier")
    group.addoption(
        "--k8s-kubeconfig",
        dest="k8s_kubeconfig",
        default=None,
        metavar="PATH",
        help="run tests/k8s against the cluster of this kubeconfig instead of starting a "
        "local control plane (also: TASKFLOW_TEST_KUBECONFIG)",
    )
