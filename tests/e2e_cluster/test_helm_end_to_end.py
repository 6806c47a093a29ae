"""``helm install`` to finished tasks on a real node: the README's Kubernetes section, run."""

from __future__ import annotations

import pytest

from tests.e2e_cluster.scenario import REPORT, Cluster, run_end_to_end


@pytest.mark.timeout(1200)  # the node and the install included
def test_helm_install_runs_tasks_on_workers_that_scale_from_zero_and_back(
    node_cluster: Cluster,
) -> None:
    run_end_to_end(node_cluster, REPORT)
