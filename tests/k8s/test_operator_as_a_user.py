"""The operator run as a person would run it: with the chart's RBAC and a bearer token, by hand
with no peering object, restarted after a crash; and what ``kubectl describe tq`` then says
about refused Deployments, spec edits, scaling and deletion."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, watch

from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TaskState
from taskflow_operator.builders.common import GENERATION
from tests.k8s.controlplane import asset_dir, eventually
from tests.k8s.operator_support import (
    Objects,
    RunningOperator,
    await_,
    operator,
    operator_config,
    task,
    taskqueue,
)
from tests.k8s.test_operator_scaling import kubectl, replicas, submit

CHART = Path(__file__).resolve().parents[2] / "helm" / "taskflow"
#: Bound of each wait. Generous: right after another test (re)installs a CRD, the API server's
#: REST mapper (refreshed every 30 s) refuses blockOwnerDeletion for it ("cannot find
#: RESTMapping"), and the operator's backoff (2 s doubling) rides that out in up to a minute.
TIMEOUT = 120.0


class Records(logging.Handler):
    """Log records of the operator (it runs in this process)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, fragment: str) -> int:
        return sum(fragment in r.getMessage() for r in self.records)

    def refusals(self) -> int:
        """Requests RBAC refused (``... is forbidden: User "system:serviceaccount:..." cannot
        ...``). Not counted: the OwnerReferencesPermissionEnforcement plugin's transient
        refusal while the API server's REST mapper has not yet learned a CRD another test just
        installed ("cannot find RESTMapping"), which the operator's backoff rides out."""
        return self.count("forbidden: User") + self.count("Not enough permissions")

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    names = ("kopf", "taskflow", "taskflow.operator.queues")
    levels = {n: logging.getLogger(n).level for n in names}
    for name in names:
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("taskflow.operator.queues").setLevel(logging.DEBUG)
    yield handler
    for name in names:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(levels[name])


def events(objects: Objects, name: str) -> list[client.CoreV1Event]:
    items = objects.core.list_namespaced_event(
        objects.namespace, field_selector=f"involvedObject.name={name}"
    ).items
    return sorted(items, key=lambda e: e.metadata.creation_timestamp)


def reasons(objects: Objects, name: str, type_: str | None = None) -> list[str]:
    return [str(e.reason) for e in events(objects, name) if type_ is None or e.type == type_]


def condition(objects: Objects, name: str, type_: str) -> dict[str, Any]:
    return objects.condition("taskqueues", name, type_) or {}


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    config = json.loads(admin.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    path.write_text(json.dumps(config))
    return path


def helm() -> str:
    path = asset_dir() / "helm"
    if not path.is_file():
        pytest.skip(f"helm is not built into {asset_dir()}: run bash hack/build-k8s.sh")
    return str(path)


#: The chart has no default connection; the operator's RBAC does not depend on what it is.
CONNECTION = (
    "--set", "connection.redisUrl=redis://redis:6379/0",
    "--set", "connection.databaseUrl=postgresql://taskflow@postgres:5432/taskflow",
)  # fmt: skip


def rendered(namespace: str, *values: str, release: str = "taskflow") -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm(), "template", release, str(CHART), "--namespace", namespace, *CONNECTION, *values],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def allowed(api: client.ApiClient, user: str, verb: str, resource: str, ns: str | None) -> bool:
    group, _, plural = resource.rpartition("/")
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=group, resource=plural, namespace=ns
            ),
        )
    )
    result = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status.allowed)


def test_chart_rbac_and_a_bearer_token_run_the_operator_in_its_namespace(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    tmp_path: Path,
    records: Records,
) -> None:
    ns = k8s_namespace
    docs = rendered(ns, "--set", f"operator.watchNamespaces[0]={ns}")
    kinds = {d["kind"] for d in docs}
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds, kinds
    wanted = [
        d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "KopfPeering")
    ]
    apply_docs(k8s_kubeconfig, ns, wanted)
    account = "taskflow-operator"
    user = f"system:serviceaccount:{ns}:{account}"
    kubeconfig = account_kubeconfig(k8s_api, k8s_kubeconfig, ns, account, tmp_path / "sa")
    whoami = subprocess.run(
        [str(asset_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o",
         "jsonpath={.status.userInfo.username}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert whoami.stdout == user, whoami.stdout + whoami.stderr

    assert allowed(k8s_api, user, "create", "apps/deployments", ns)
    assert not allowed(k8s_api, user, "create", "apps/deployments", "kube-system")
    assert not allowed(k8s_api, user, "list", "/namespaces", None)
    assert not allowed(k8s_api, user, "patch", "apps/deployments", ns)  # not needed

    objects = Objects(k8s_api, ns)
    config = operator_config(kubeconfig, ns, standalone=False, peering_name="taskflow")
    with operator(config):
        objects.create("taskqueues", taskqueue("mail", replicas={"min": 1, "max": 2}))
        dep = eventually(lambda: objects.deployment("mail-workers"), TIMEOUT, "deployment")
        (ref,) = dep.metadata.owner_references
        assert ref.block_owner_deletion is True  # needs update on taskqueues/finalizers
        eventually(lambda: condition(objects, "mail", "Ready"), TIMEOUT, "status written")
        eventually(lambda: "Created" in reasons(objects, "mail"), TIMEOUT, "an Event posted")
    assert records.count("system:anonymous") == 0
    assert records.count("Not enough permissions") == 0, records.count("Not enough")
    assert records.refusals() == 0


def objects_core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def apply_docs(kubeconfig: Path, namespace: str, docs: list[dict[str, Any]]) -> None:
    applied = subprocess.run(
        [str(asset_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", "apply", "-n", namespace,
         "-f", "-"],
        input=yaml.safe_dump_all(docs), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr


def account_kubeconfig(
    api: client.ApiClient, admin: Path, namespace: str, account: str, path: Path
) -> Path:
    """Like ``kubectl create token``: a bound service-account token in a kubeconfig."""
    issued = objects_core(api).create_namespaced_service_account_token(
        account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=["https://kubernetes.default.svc.cluster.local"],
                expiration_seconds=3600,
            )
        ),
    )
    return token_kubeconfig(admin, issued.status.token, path)


def test_chart_cluster_role_runs_the_operator_cluster_wide(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    tmp_path: Path,
    records: Records,
) -> None:
    release = f"tf{k8s_namespace[-6:]}"
    docs = rendered(k8s_namespace, release=release)
    cluster_docs = [
        d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering")
    ]
    account = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(cluster_docs) == 3
    apply_docs(k8s_kubeconfig, k8s_namespace, account + cluster_docs)
    rbac = client.RbacAuthorizationV1Api(k8s_api)
    try:
        kubeconfig = account_kubeconfig(
            k8s_api, k8s_kubeconfig, k8s_namespace, f"{release}-operator", tmp_path / "k"
        )
        objects = Objects(k8s_api, k8s_namespace)
        config = operator_config(kubeconfig, standalone=False, peering_name=release)
        with operator(config):
            objects.create("taskqueues", taskqueue("wide", replicas={"min": 1, "max": 2}))
            objects.create("tasks", task("one", "wide", "noop"))
            eventually(lambda: objects.deployment("wide-workers"), TIMEOUT, "deployment")
            eventually(lambda: condition(objects, "wide", "Ready"), TIMEOUT, "queue status")
            eventually(
                lambda: ((objects.get("tasks", "one") or {}).get("status") or {}).get("taskId"),
                TIMEOUT,
                "task submitted and its status written",
            )
            eventually(lambda: "Created" in reasons(objects, "wide"), TIMEOUT, "an Event")
        assert records.refusals() == 0
    finally:
        rbac.delete_cluster_role_binding(f"{release}-operator")
        rbac.delete_cluster_role(f"{release}-operator")
        client.CustomObjectsApi(k8s_api).delete_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", release
        )


def test_an_operator_started_by_hand_creates_its_peering_object_and_acts(
    operator_settings: Any, k8s_api: client.ApiClient, k8s_kubeconfig: Path, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(
        k8s_kubeconfig, k8s_namespace, standalone=False, peering_name="by-hand"
    )
    with operator(config):
        objects.create("taskqueues", taskqueue("jobs"))
        eventually(lambda: objects.deployment("jobs-workers"), TIMEOUT, "the operator acts")
        peering = objects.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", k8s_namespace, "kopfpeerings", "by-hand"
        )
        assert peering["metadata"]["name"] == "by-hand"


def operator_process(
    kubeconfig: Path, namespace: str, log: Path, settings: Any, *, flag: bool
) -> subprocess.Popen[bytes]:
    """``taskflow operator`` given its kubeconfig by ``--kubeconfig`` or by ``$KUBECONFIG``."""
    env = {
        **os.environ,
        "TASKFLOW_REDIS_URL": settings.redis_url,
        "TASKFLOW_DATABASE_URL": settings.database_url,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    for name in ("POD_ID", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        env.pop(name, None)
    args = ["--kubeconfig", str(kubeconfig)] if flag else []
    if not flag:
        env["KUBECONFIG"] = str(kubeconfig)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "taskflow", "operator", *args, "--namespace", namespace,
             "--peering", "restarts", "--http-port", "0", "--liveness", "", "--log-format",
             "text"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip


def test_a_crash_restart_acts_at_once_and_kubeconfig_from_the_environment_is_used(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    log = tmp_path / "operator.log"

    def peers() -> dict[str, Any]:
        body = objects.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", k8s_namespace, "kopfpeerings", "restarts"
        )
        return dict(body.get("status") or {})

    first = operator_process(k8s_kubeconfig, k8s_namespace, log, operator_settings, flag=True)
    second: subprocess.Popen[bytes] | None = None
    try:
        objects.create("taskqueues", taskqueue("before"))
        eventually(lambda: objects.deployment("before-workers"), 60, "the first operator acts")
        eventually(lambda: any(f"/{first.pid}/" in k for k in peers()), TIMEOUT, "its record")
        first.send_signal(signal.SIGKILL)  # no goodbye: its record stays behind
        first.wait(10)
        assert any(f"/{first.pid}/" in k for k in peers())
        mark = len(log.read_text())
        # Restarted as a person would from a shell with KUBECONFIG exported.
        second = operator_process(k8s_kubeconfig, k8s_namespace, log, operator_settings, flag=False)
        objects.create("taskqueues", taskqueue("after"))
        eventually(lambda: objects.deployment("after-workers"), 60, "the restarted one acts")
        assert not any(f"/{first.pid}/" in k for k in peers())
        after = log.read_text()[mark:]
        assert "Pausing" not in after and "conflicting operators" not in after, after
        assert f"Kubernetes: {k8s_kubeconfig}, from KUBECONFIG" in after, after
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)


def test_refused_deployments_are_degraded_with_one_warning_then_recovered(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    records: Records,
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    fast = {"pollIntervalSeconds": 0.2}
    bad_env = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "s"}}}]  # no key
    objects.create("taskqueues", taskqueue("refused", env=bad_env, autoscaling=fast))
    objects.create("taskqueues", taskqueue("keda", autoscaling={**fast, "engine": "keda"}))
    with operator(operator_config(k8s_kubeconfig, k8s_namespace)):
        for name, reason in (("refused", "DeploymentRefused"), ("keda", "KedaMissing")):
            eventually(
                lambda n=name, r=reason: condition(objects, n, "Degraded").get("reason") == r,
                TIMEOUT,
                f"{name} degraded",
            )
            eventually(
                lambda n=name: records.count(f"pass {k8s_namespace}/{n}: ") >= 4,
                TIMEOUT,
                f"{name}: a few failing passes",
            )
        degraded = condition(objects, "refused", "Degraded")
        assert degraded["status"] == "True"
        assert (
            "spec.template.spec.containers[0].env[2].valueFrom.secretKeyRef.key"
            in (degraded["message"])
        )
        assert "install KEDA" in condition(objects, "keda", "Degraded")["message"]
        assert condition(objects, "refused", "Ready")["status"] == "False"

        objects.patch("taskqueues", "refused", {"spec": {"env": []}})
        eventually(lambda: objects.deployment("refused-workers"), TIMEOUT, "accepted when fixed")
        eventually(lambda: "Recovered" in reasons(objects, "refused"), TIMEOUT, "Recovered Event")
        assert condition(objects, "refused", "Degraded")["status"] == "False"
        describe = kubectl(k8s_kubeconfig, "describe", "tq", "refused", "-n", k8s_namespace)
    assert reasons(objects, "refused", "Warning") == ["DeploymentRefused"]
    assert reasons(objects, "keda", "Warning") == ["KedaMissing"]
    assert "DeploymentRefused" in describe and "Recovered" in describe, describe
    assert records.tracebacks() == []


def test_a_spec_edit_rolls_out_clamped_and_a_hand_edit_is_drift(
    operator_settings: Any, k8s_api: client.ApiClient, k8s_kubeconfig: Path, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    objects.create("taskqueues", taskqueue("edit", replicas={"min": 3, "max": 5}))
    with operator(operator_config(k8s_kubeconfig, k8s_namespace)):
        eventually(lambda: replicas(objects, "edit-workers") == 3, TIMEOUT, "three workers")
        start = objects.deployment("edit-workers")
        seen: list[tuple[str, int]] = []
        stream = watch.Watch()

        def record() -> None:
            events = stream.stream(
                objects.apps.list_namespaced_deployment,
                k8s_namespace,
                field_selector="metadata.name=edit-workers",
                resource_version=start.metadata.resource_version,
                timeout_seconds=60,
            )
            with contextlib.suppress(urllib3.exceptions.ProtocolError):  # cut when stopped
                for event in events:
                    d = event["object"]
                    seen.append((d.spec.template.spec.containers[0].image, d.spec.replicas))

        watcher = threading.Thread(target=record, daemon=True)
        watcher.start()
        objects.patch(
            "taskqueues",
            "edit",
            {"spec": {"image": "registry.example/worker:2", "replicas": {"min": 1, "max": 1}}},
        )
        eventually(lambda: ("registry.example/worker:2", 1) in seen, TIMEOUT, "rolled out")
        stream.stop()
        new = [n for image, n in seen if image == "registry.example/worker:2"]
        assert new[0] == 1, seen  # the new template never ran on more pods than the new max
        eventually(lambda: "Updated" in reasons(objects, "edit"), TIMEOUT, "Updated Event")
        assert "DriftRepaired" not in reasons(objects, "edit")
        dep = objects.deployment("edit-workers")
        generation = (objects.get("taskqueues", "edit") or {})["metadata"]["generation"]
        assert dep.metadata.annotations[GENERATION] == str(generation)

        objects.apps.patch_namespaced_deployment(
            "edit-workers",
            k8s_namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil"}]}}}},
        )
        eventually(lambda: "DriftRepaired" in reasons(objects, "edit", "Warning"), TIMEOUT, "drift")


async def test_scaling_is_told_and_deleting_a_queue_cancels_its_tasks(
    engine: Engine, k8s_api: client.ApiClient, k8s_namespace: str, k8s_kubeconfig: Path
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    op = await asyncio.to_thread(
        RunningOperator(operator_config(k8s_kubeconfig, k8s_namespace)).start
    )
    try:
        objects.create(
            "taskqueues",
            taskqueue("doomed", concurrency=2, replicas={"min": 0, "max": 3},
                      autoscaling={"pollIntervalSeconds": 0.3}),
        )  # fmt: skip
        await await_(lambda: replicas(objects, "doomed-workers") == 0, TIMEOUT, "at zero")
        ids = await submit(engine, k8s_namespace, "doomed", 5, "noop", None)
        objects.create("tasks", task("declared", "doomed", "noop"))

        def declared_phase() -> str | None:
            return ((objects.get("tasks", "declared") or {}).get("status") or {}).get("phase")

        await await_(lambda: declared_phase() == "Queued", TIMEOUT, "the Task is queued")
        await await_(lambda: replicas(objects, "doomed-workers") == 3, TIMEOUT, "scaled up")
        await await_(lambda: "Scaled" in reasons(objects, "doomed"), TIMEOUT, "Scaled Event")
        (scaled,) = [e for e in events(objects, "doomed") if e.reason == "Scaled"]
        assert scaled.type == "Normal" and scaled.message.startswith("0 -> 3 replicas")
        describe = kubectl(k8s_kubeconfig, "describe", "tq", "doomed", "-n", k8s_namespace)
        assert "Scaled" in describe and "0 -> 3 replicas" in describe, describe

        objects.delete("taskqueues", "doomed")
        await await_(
            lambda: "TasksCancelled" in reasons(objects, "doomed"), TIMEOUT, "tasks cancelled"
        )
        (told,) = [e for e in events(objects, "doomed") if e.reason == "TasksCancelled"]
        assert told.message == "6 unfinished task(s) cancelled"
        await await_(lambda: declared_phase() == "Cancelled", TIMEOUT, "the Task says Cancelled")
        for task_id in ids:
            assert (await engine.get(task_id)).state is TaskState.CANCELLED
        stats = await engine.queue_stats(QueueRef(k8s_namespace, "doomed"))
        assert (stats.ready, stats.cancelled) == (0, 6)
        await await_(lambda: objects.get("taskqueues", "doomed") is None, 60, "queue deleted")
    finally:
        await asyncio.to_thread(op.stop)
    assert op.error is None


def test_identical_replicas_elect_the_one_running_longest(
    operator_settings: Any,
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    k8s_namespace: str,
    records: Records,
) -> None:
    """The chart's replicas share a peering and give no priority: one leads, not none."""
    objects = Objects(k8s_api, k8s_namespace)
    config = operator_config(
        k8s_kubeconfig, k8s_namespace, standalone=False, peering_name="replicas"
    )
    assert config.priority is None

    def peers() -> int:
        body = objects.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", k8s_namespace, "kopfpeerings", "replicas"
        )
        return len(body.get("status") or {})

    first = RunningOperator(config).start()
    second: RunningOperator | None = None
    try:
        objects.create("taskqueues", taskqueue("one"))
        eventually(lambda: objects.deployment("one-workers"), TIMEOUT, "the first acts")
        second = RunningOperator(config).start()
        eventually(lambda: peers() == 2 or None, TIMEOUT, "both in the peering")
        objects.create("taskqueues", taskqueue("two"))
        eventually(lambda: objects.deployment("two-workers"), TIMEOUT, "the leader acts")
        # kopf starts peered operators paused; only the leader resumed.
        assert records.count("Resuming operations") == 1
        first.stop()
        objects.create("taskqueues", taskqueue("three"))
        eventually(lambda: objects.deployment("three-workers"), 60, "the second takes over")
        assert records.count("Resuming operations") == 2
    finally:
        if second is not None:
            second.stop()
        first.stop()
    assert records.count("including self") == 0
    assert first.error is None and (second is None or second.error is None)
