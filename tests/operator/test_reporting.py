"""What a TaskQueue's Events say, and how often."""

from __future__ import annotations

from taskflow_operator.reporting import (
    MAX_BACKOFF_SECONDS,
    SCALED_EVENT_SECONDS,
    Failure,
    Notice,
    QueueReport,
)

REFUSED = Failure("DeploymentRefused", "spec.template.spec.containers[0].resources: bad")


def test_a_failure_that_persists_is_one_warning_and_backs_off() -> None:
    r = QueueReport()
    notices = [r.failed(REFUSED, backoff=True) for _ in range(50)]
    assert notices[0] == Notice(True, "DeploymentRefused", REFUSED.message)
    assert notices[1:] == [None] * 49
    delays = [QueueReport(failed_passes=n).delay(5) for n in range(0, 12)]
    assert delays[0] == 5 and delays == sorted(delays)
    assert r.delay(5) == MAX_BACKOFF_SECONDS


def test_a_different_failure_is_news_and_recovery_is_one_normal_event() -> None:
    r = QueueReport()
    r.failed(REFUSED, backoff=True)
    keda = Failure("KedaMissing", "install KEDA")
    assert r.failed(keda, backoff=True) == Notice(True, "KedaMissing", "install KEDA")
    assert r.succeeded() == Notice(False, "Recovered", "no longer KedaMissing")
    assert r.recovered.is_set()
    assert (r.delay(5), r.succeeded()) == (5, None)
    assert r.failed(keda, backoff=True) is not None  # failing again after recovering is news


def test_a_deployment_condition_failure_does_not_slow_the_loop() -> None:
    r = QueueReport()
    assert r.failed(Failure("DeploymentFailing", "quota"), backoff=False) is not None
    assert r.delay(5) == 5


def test_scale_changes_are_coalesced_into_one_event_per_interval() -> None:
    r = QueueReport()
    first = r.scaled(0, 3, now=100, detail="backlog 30")
    assert first == Notice(False, "Scaled", "0 -> 3 replicas (backlog 30)")
    assert r.scaled(3, 5, now=101, detail="backlog 50") is None
    assert r.scaled(5, 2, now=110, detail="backlog 20") is None
    assert r.flush(now=100 + SCALED_EVENT_SECONDS - 1, detail="backlog 20") is None
    later = r.flush(now=100 + SCALED_EVENT_SECONDS, detail="backlog 20")
    assert later == Notice(False, "Scaled", "3 -> 5 -> 2 replicas (backlog 20)")
    assert r.flush(now=1000, detail="x") is None  # nothing pending
    assert r.scaled(2, 0, now=1000, detail="backlog 0") == Notice(
        False, "Scaled", "2 -> 0 replicas (backlog 0)"
    )


def test_refusals_of_the_api_server_read_as_what_to_fix() -> None:
    import json

    from kubernetes.client.exceptions import ApiException

    from taskflow_operator.builders.common import Owner
    from taskflow_operator.reconcile.workers import refusal

    owner = Owner("TaskQueue", "mail", "team", "uid")

    def refused(status: int, message: str) -> Failure:
        exc = ApiException(status=status, reason="x")
        exc.body = json.dumps({"kind": "Status", "message": message})
        return refusal(exc, owner)

    invalid = refused(422, 'Deployment.apps "mail-workers" is invalid: spec.replicas: bad')
    assert invalid.reason == "DeploymentRefused"
    assert invalid.message.endswith("is invalid: spec.replicas: bad")
    assert refused(403, "forbidden: quota").reason == "Forbidden"
    assert refused(500, "etcd").reason == "KubernetesError"
