"""Two operators sharing a peering: one leads, the other waits, and takes over when it leaves."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from taskflow.config import Settings
from taskflow_operator.settings import OperatorConfig
from tests.k8s.controlplane import eventually
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    operator_config,
    taskqueue,
)

TIMEOUT = 30.0


class Messages(logging.Handler):
    """Collects log messages of the operators (both run in this process)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines)


@pytest.fixture
def messages() -> Iterator[Messages]:
    handler = Messages()
    for name in ("kopf", "taskflow"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    yield handler
    for name in ("kopf", "taskflow"):
        logging.getLogger(name).removeHandler(handler)


def test_one_operator_leads_and_a_follower_takes_over(
    operator_settings: Settings,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    messages: Messages,
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    peering = "taskflow-test"
    objects.custom.create_namespaced_custom_object(
        "kopf.dev", "v1", k8s_namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": peering}},
    )  # fmt: skip

    def config(priority: int) -> OperatorConfig:
        return operator_config(
            k8s_kubeconfig, k8s_namespace, standalone=False, peering_name=peering, priority=priority
        )

    leader = RunningOperator(config(100)).start()
    follower: RunningOperator | None = None
    try:
        objects.create("taskqueues", taskqueue("first"))
        eventually(lambda: objects.deployment("first-workers"), TIMEOUT, "the leader acts")
        eventually(lambda: messages.count("housekeeping started") == 1, TIMEOUT, "leader sweeps")

        follower = RunningOperator(config(10)).start()

        def peers() -> int:
            body = objects.custom.get_namespaced_custom_object(
                "kopf.dev", "v1", k8s_namespace, "kopfpeerings", peering
            )
            return len(body.get("status") or {})

        eventually(lambda: peers() == 2 or None, TIMEOUT, "both operators in the peering")
        # kopf starts paused and resumes once it knows its peers; the follower, seeing a
        # higher priority, stays paused: work goes on in the leader alone.
        resumed = messages.count("Resuming operations")
        objects.create("taskqueues", taskqueue("middle"))
        eventually(lambda: objects.deployment("middle-workers"), TIMEOUT, "the leader still acts")
        assert messages.count("Resuming operations") == resumed
        assert messages.count("housekeeping started") == 1

        leader.stop()
        eventually(
            lambda: messages.count("Resuming operations") == resumed + 1 or None,
            TIMEOUT,
            "the follower resumes",
        )
        objects.create("taskqueues", taskqueue("second"))
        eventually(lambda: objects.deployment("second-workers"), TIMEOUT, "the follower acts")
        eventually(
            lambda: messages.count("housekeeping started") == 2 or None, TIMEOUT, "it sweeps"
        )
    finally:
        if follower is not None:
            follower.stop()
        leader.stop()
    assert leader.error is None and (follower is None or follower.error is None)
