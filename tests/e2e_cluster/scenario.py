"""The cluster end to end, as a user runs it: ``helm install`` the chart, a ``TaskQueue`` of the
worker image with the example handlers, tasks through the Python client and a declarative
``Task``, workers scaling from zero and back, every outcome checked in PostgreSQL.

The steps follow the README's Kubernetes section. ``Cluster`` says where: the real node of this
machine (tests/e2e_cluster/conftest.py) or a kind cluster (tests/kind).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from taskflow.embedded import EmbeddedPostgres
from taskflow_client import Client
from tests.k8s.controlplane import REPO_ROOT, close_api_client, eventually, new_api_client

CHART = REPO_ROOT / "helm" / "taskflow"
README = REPO_ROOT / "README.md"
REPORT = REPO_ROOT / "build" / "e2e-cluster" / "report.txt"
README_HEREDOC = "kubectl -n taskflow apply -f - <<EOF\n"
README_WORKER_IMAGE = "$REGISTRY/taskflow-worker:0.1.0"
EXAMPLE_TASK = REPO_ROOT / "examples" / "k8s" / "task.yaml"
RELEASE = "taskflow"
NAMESPACE = "taskflow"
QUEUE = "emails"  # the queue examples/k8s/task.yaml submits to
WORKERS = f"{QUEUE}-workers"
WORKER_PODS = f"taskflow.dev/queue={QUEUE}"
TASKS = 2000
BATCH = 500
TASK_SECONDS = 0.25
# One long task at a lower priority, claimed last: while it runs, the backlog wants one pod,
# the operator reads every pod's in-flight count and the idle pods are removed around it.
LONG_TASK_SECONDS = 12.0
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 420.0
RECORD_TIMEOUT = 60.0
SCALE_DOWN_TIMEOUT = 180.0


@dataclass
class Cluster:
    """Where the scenario runs and how its pods reach the data plane."""

    kubeconfig: Path
    kubectl: str
    helm: str
    api_image: str
    worker_image: str
    redis_url: str  # as pods reach it
    database_url: str  # as pods reach it
    database_url_here: str  # as this process reaches it
    helm_values: list[str] = field(default_factory=list)  # extra --set flags of this cluster
    pull_policy: str = "Never"


@dataclass
class PodRecord:
    name: str
    node: str | None = None
    first_seen: float = 0.0
    running_at: float | None = None
    deleted_at: float | None = None
    costs: list[str] = field(default_factory=list)
    exit_code: int | None = None
    exit_reason: str | None = None
    log: str = ""  # the worker's log once its container ended


class PodWatch:
    """Every worker pod of the queue: when it ran, its deletion costs, how its container ended."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.pods: dict[str, PodRecord] = {}
        # pod, its cost, costs of the pods that stay, at its deletion
        self.deletion_order: list[tuple[str, str, dict[str, str]]] = []
        self.max_running = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self._core: client.CoreV1Api

    def __enter__(self) -> PodWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        api_client = new_api_client(self.cluster.kubeconfig)
        core = self._core = client.CoreV1Api(api_client)
        try:
            while not self._stop.is_set():
                stream = watch.Watch()
                with contextlib.suppress(ApiException, OSError, ValueError):
                    for event in stream.stream(
                        core.list_namespaced_pod,
                        NAMESPACE,
                        label_selector=WORKER_PODS,
                        timeout_seconds=5,
                    ):
                        self._record(event["type"], event["object"])
                        if self._stop.is_set():
                            stream.stop()
                            break
        finally:
            close_api_client(api_client)

    def _record(self, kind: str, pod: client.V1Pod) -> None:
        now = time.time()
        name = pod.metadata.name
        with self._lock:
            record = self.pods.setdefault(name, PodRecord(name, first_seen=now))
            record.node = pod.spec.node_name or record.node
            cost = (pod.metadata.annotations or {}).get(DELETION_COST)
            if cost is not None and (not record.costs or record.costs[-1] != cost):
                record.costs.append(cost)
            if pod.status.phase == "Running" and record.running_at is None:
                record.running_at = now
            ended = False
            for status in pod.status.container_statuses or []:
                terminated = status.state and status.state.terminated
                if terminated is not None:
                    ended = record.exit_code is None
                    record.exit_code = terminated.exit_code
                    record.exit_reason = terminated.reason
            if pod.metadata.deletion_timestamp is not None and record.deleted_at is None:
                record.deleted_at = now
                others = {
                    other.name: (other.costs[-1] if other.costs else "")
                    for other in self.pods.values()
                    if other.name != name and other.deleted_at is None
                }
                own = record.costs[-1] if record.costs else ""
                self.deletion_order.append((name, own, others))
            if kind == "DELETED" and record.deleted_at is None:
                record.deleted_at = now
            running = sum(
                1 for r in self.pods.values() if r.running_at is not None and r.deleted_at is None
            )
            self.max_running = max(self.max_running, running)
        if ended:
            with contextlib.suppress(ApiException):
                record.log = self._core.read_namespaced_pod_log(name, NAMESPACE, tail_lines=200)

    def logs(self) -> str:
        return "\n".join(f"--- worker {p.name}\n{p.log}" for p in self.pods.values())


@dataclass
class Timings:
    install_to_ready: float = 0.0
    backlog_to_first_task: float = 0.0
    backlog_to_done: float = 0.0
    drained_to_zero: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"helm install -> operator and API pods Ready: {self.install_to_ready:.1f} s",
            f"{TASKS} tasks submitted -> first task running in a worker pod: "
            f"{self.backlog_to_first_task:.1f} s",
            f"{TASKS} tasks submitted -> all succeeded: {self.backlog_to_done:.1f} s",
            f"backlog drained -> worker Deployment at 0 pods: {self.drained_to_zero:.1f} s",
        ]


@dataclass
class Report:
    timings: Timings = field(default_factory=Timings)
    kubectl_scaled: str = ""
    kubectl_final: str = ""
    workers: list[str] = field(default_factory=list)
    pods: list[PodRecord] = field(default_factory=list)

    def late_pods(self) -> list[str]:
        """Pods that started after every pod that ran tasks was gone: a scale-up from zero
        with no task to run."""
        ran = [p for p in self.pods if any(w.startswith(p.name) for w in self.workers)]
        last = max((p.deleted_at or 0.0 for p in ran), default=0.0)
        return [p.name for p in self.pods if p.first_seen > last > 0]

    def text(self) -> str:
        pods = "\n".join(
            f"  {p.name}: node={p.node} costs={','.join(p.costs) or '-'} "
            f"exit={p.exit_code} ({p.exit_reason})"
            for p in self.pods
        )
        return "\n".join(
            [
                "== timings",
                *self.timings.lines(),
                f"== worker pods ({len(self.pods)}), deletion costs seen, how they ended",
                pods,
                f"== workers that recorded attempts: {len(self.workers)}",
                f"== pods started after the last busy one went: {self.late_pods() or 'none'}",
                "== kubectl get tq,tasks,pods (scaled up)",
                self.kubectl_scaled,
                "== kubectl get tq,tasks,pods (after the run)",
                self.kubectl_final,
            ]
        )


@contextlib.contextmanager
def postgres_for_subnet(data_dir: Path, host: str, subnet: str) -> Iterator[EmbeddedPostgres]:
    """PostgreSQL on ``host`` trusting clients of ``subnet`` (``host`` among them): initialised
    on loopback, where it trusts its own check, then opened to the subnet and started there."""
    with EmbeddedPostgres(data_dir, fsync=False) as first:
        hba = first.pgdata / "pg_hba.conf"
    with hba.open("a") as handle:
        handle.write(f"host all all {subnet} trust\n")
    with EmbeddedPostgres(data_dir, host=host, fsync=False) as server:
        yield server


def run(cluster: Cluster, *args: str, timeout: float = 120.0, stdin: str | None = None) -> str:
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def kubectl(cluster: Cluster, *args: str, timeout: float = 120.0, stdin: str | None = None) -> str:
    return run(
        cluster,
        cluster.kubectl,
        f"--kubeconfig={cluster.kubeconfig}",
        *args,
        timeout=timeout,
        stdin=stdin,
    )


def api_token(cluster: Cluster) -> str:
    """The admin token the chart generated (auth is on by default), as the README reads it."""
    encoded = kubectl(
        cluster, "-n", NAMESPACE, "get", "secret", f"{RELEASE}-api-token",
        "-o", "jsonpath={.data.token}",
    )  # fmt: skip
    return base64.b64decode(encoded).decode()


def helm_install(cluster: Cluster) -> None:
    """The README's ``helm install``, with this cluster's images and data plane."""
    repository, tag = cluster.api_image.rsplit(":", 1)
    run(
        cluster,
        cluster.helm,
        f"--kubeconfig={cluster.kubeconfig}",
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        f"image.pullPolicy={cluster.pull_policy}",
        "--set",
        f"connection.redisUrl={cluster.redis_url}",
        "--set",
        f"connection.databaseUrl={cluster.database_url}",
        "--set",
        "api.replicas=1",
        # The default NetworkPolicies let workers reach Redis and PostgreSQL on these ports.
        "--set",
        f"networkPolicy.redis.port={urlsplit(cluster.redis_url).port or 6379}",
        "--set",
        f"networkPolicy.postgres.port={urlsplit(cluster.database_url).port or 5432}",
        *cluster.helm_values,
        "--wait",
        f"--timeout={int(INSTALL_TIMEOUT)}s",
        timeout=INSTALL_TIMEOUT + 30,
    )


def readme_kubernetes_section() -> str:
    text = README.read_text()
    start = text.index("## On Kubernetes")
    return text[start : text.index("\n## ", start + 1)]


def taskqueue_manifest(cluster: Cluster) -> str:
    """The README's TaskQueue with this cluster's worker image, and scaling knobs that keep the
    test short (a 5 s scale-down window, the backlog read every second)."""
    section = readme_kubernetes_section()
    assert f"helm install {RELEASE} helm/taskflow --namespace {NAMESPACE}" in section
    start = section.index(README_HEREDOC) + len(README_HEREDOC)
    manifest = section[start : section.index("\nEOF\n", start)]
    body = yaml.safe_load(manifest.replace(README_WORKER_IMAGE, cluster.worker_image))
    assert body["kind"] == "TaskQueue" and body["metadata"]["name"] == QUEUE, body
    assert body["spec"]["connection"]["secretName"] == f"{RELEASE}-connection", body
    body["spec"] |= {
        "imagePullPolicy": cluster.pull_policy,
        "autoscaling": {"scaleDownStabilizationSeconds": 5, "pollIntervalSeconds": 1},
        "terminationGracePeriodSeconds": 15,
    }
    return yaml.safe_dump(body)


@contextlib.contextmanager
def port_forward(cluster: Cluster, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` to ``target``: works without kube-proxy and from any host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            cluster.kubectl,
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            NAMESPACE,
            "port-forward",
            target,
            f"{local}:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "Forwarding from" not in line:
            process.kill()
            rest = process.stdout.read()
            raise AssertionError(f"kubectl port-forward {target} failed: {line}{rest}")
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


def ready_replicas(apps: client.AppsV1Api, name: str) -> int:
    deployment = apps.read_namespaced_deployment(name, NAMESPACE)
    return int(deployment.status.ready_replicas or 0)


def deployment_replicas(apps: client.AppsV1Api, name: str) -> tuple[int, int] | None:
    try:
        deployment = apps.read_namespaced_deployment(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return (deployment.spec.replicas or 0, deployment.status.replicas or 0)


def run_scenario(cluster: Cluster, report_path: Path) -> Report:
    report = Report()
    api_client = new_api_client(cluster.kubeconfig)
    try:
        install(cluster, report, client.AppsV1Api(api_client))
        with PodWatch(cluster) as pods:
            ids: list[str] = []
            try:
                submitted_at = run_backlog(cluster, report, pods, ids, api_client)
                report.pods = sorted(pods.pods.values(), key=lambda p: p.first_seen)
                # PostgreSQL, the record: every task once, nothing lost, run by those pods.
                records = check_records(cluster, ids, submitted_at)
                report.workers = records.workers
                report.timings.backlog_to_first_task = records.first_start - submitted_at
                check_pods(report, pods, records.long_task_worker)
            except AssertionError as error:
                stuck = stuck_tasks(cluster, ids) if ids else ""
                raise AssertionError(f"{error}\n{stuck}\n{pods.logs()}") from None
        report.kubectl_final = kubectl(
            cluster, "-n", NAMESPACE, "get", "tq,tasks,pods", "-o", "wide"
        )
        return report
    finally:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(report.text() + "\n")
        close_api_client(api_client)


def install(cluster: Cluster, report: Report, apps: client.AppsV1Api) -> None:
    """helm install (--wait: the Deployments' pods pass their readiness probes), then the
    queue, whose worker Deployment stays at zero pods while the queue is empty."""
    started = time.monotonic()
    helm_install(cluster)
    kubectl(
        cluster, "-n", NAMESPACE, "wait", "--for=condition=Ready", "pod",
        f"-l=app.kubernetes.io/instance={RELEASE}", "--timeout=60s",
    )  # fmt: skip
    report.timings.install_to_ready = time.monotonic() - started
    kubectl(cluster, "-n", NAMESPACE, "apply", "-f", "-", stdin=taskqueue_manifest(cluster))
    eventually(
        lambda: deployment_replicas(apps, WORKERS) == (0, 0),
        60,
        f"{WORKERS} at 0 replicas",
        interval=0.5,
    )


def submit_backlog(tasks: Client) -> list[str]:
    """The short tasks, then the long one; its id is the last."""
    ids: list[str] = []
    for start in range(0, TASKS, BATCH):
        batch = [
            {"queue": QUEUE, "handler": "sleep", "payload": {"seconds": TASK_SECONDS}}
            for _ in range(start, min(start + BATCH, TASKS))
        ]
        ids += tasks.submit_many(batch)
    ids.append(tasks.submit(QUEUE, "sleep", {"seconds": LONG_TASK_SECONDS}, priority=-1))
    assert len(set(ids)) == TASKS + 1
    return ids


def run_backlog(
    cluster: Cluster, report: Report, pods: PodWatch, ids: list[str], api: client.ApiClient
) -> float:
    """2,000 tasks through the Python client and one declarative Task; workers scale up, run
    them, and go back to zero pods. Fills ``ids``; returns when the tasks were submitted."""
    with (
        port_forward(cluster, f"svc/{RELEASE}-api", 50051) as port,
        Client(
            f"127.0.0.1:{port}", token=api_token(cluster), namespace=NAMESPACE, timeout=60
        ) as tasks,
    ):
        submitted_at = time.time()
        ids += submit_backlog(tasks)
        kubectl(cluster, "-n", NAMESPACE, "apply", "-f", str(EXAMPLE_TASK))
        eventually(
            lambda: pods.max_running >= 2, RUN_TIMEOUT, "two worker pods running", interval=0.5
        )
        # The snapshot once two pods pass their readiness probe (if the backlog lasts that long).
        apps = client.AppsV1Api(api)
        with contextlib.suppress(AssertionError):
            eventually(lambda: ready_replicas(apps, WORKERS) >= 2, 20, "ready", interval=0.5)
        report.kubectl_scaled = kubectl(
            cluster, "-n", NAMESPACE, "get", "tq,tasks,pods", "-o", "wide"
        )

        def all_counted() -> bool:
            stats = tasks.queue_stats(QUEUE)
            return stats.succeeded + stats.failed >= len(ids) + 1 and stats.running == 0

        eventually(all_counted, RUN_TIMEOUT, f"{len(ids) + 1} tasks finished", interval=1.0)
        # Redis counts an outcome first; PostgreSQL records it right after.
        eventually(
            lambda: task_states(cluster, ids) == {"succeeded": len(ids)},
            RECORD_TIMEOUT,
            f"all {len(ids)} tasks recorded as succeeded in PostgreSQL",
            interval=1.0,
        )
        drained_at = time.monotonic()
        report.timings.backlog_to_done = time.time() - submitted_at
        kubectl(
            cluster, "-n", NAMESPACE, "wait", "task/welcome-alice",
            "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s",
        )  # fmt: skip
    # Back to zero: every pod drains on SIGTERM and goes.
    core = client.CoreV1Api(api)
    eventually(
        lambda: (
            deployment_replicas(apps, WORKERS) == (0, 0)
            and not core.list_namespaced_pod(NAMESPACE, label_selector=WORKER_PODS).items
        ),
        SCALE_DOWN_TIMEOUT,
        f"{WORKERS} back at 0 pods",
        interval=0.5,
    )
    report.timings.drained_to_zero = time.monotonic() - drained_at
    return submitted_at


def task_states(cluster: Cluster, ids: list[str]) -> dict[str, int]:
    with psycopg.connect(cluster.database_url_here) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM tasks WHERE id = ANY(%s::uuid[]) GROUP BY state", (ids,)
        ).fetchall()
    return {str(state): int(count) for state, count in rows}


def stuck_tasks(cluster: Cluster, ids: list[str]) -> str:
    """The tasks of ``ids`` that did not succeed, with their attempts."""
    with psycopg.connect(cluster.database_url_here) as conn:
        rows = conn.execute(
            "SELECT t.id, t.state, t.attempts, a.number, a.worker, a.started_at, a.finished_at,"
            " a.outcome FROM tasks t LEFT JOIN task_attempts a ON a.task_id = t.id"
            " WHERE t.id = ANY(%s::uuid[]) AND t.state <> 'succeeded' ORDER BY t.id, a.number",
            (ids,),
        ).fetchall()
    header = "tasks that did not succeed (id, state, attempts, attempt, worker, started, finished,"
    return f"{header} outcome):\n" + "\n".join(map(str, rows[:20]))


@dataclass(frozen=True)
class Records:
    first_start: float  # epoch seconds of the first attempt
    workers: list[str]  # names of the workers that made attempts
    long_task_worker: str


def check_records(cluster: Cluster, ids: list[str], submitted_at: float) -> Records:
    with psycopg.connect(cluster.database_url_here) as conn:
        states = dict(
            conn.execute(
                "SELECT state, count(*) FROM tasks WHERE id = ANY(%s::uuid[]) GROUP BY state",
                (ids,),
            ).fetchall()
        )
        assert states == {"succeeded": len(ids)}, f"task states in PostgreSQL: {states}"
        outcomes = dict(
            conn.execute(
                "SELECT outcome, count(*) FROM task_attempts WHERE task_id = ANY(%s::uuid[])"
                " GROUP BY outcome",
                (ids,),
            ).fetchall()
        )
        assert outcomes.get("succeeded") == len(ids), f"attempt outcomes: {outcomes}"
        twice = conn.execute(
            "SELECT task_id, count(*) FROM task_attempts WHERE task_id = ANY(%s::uuid[])"
            " AND outcome = 'succeeded' GROUP BY task_id HAVING count(*) > 1",
            (ids,),
        ).fetchall()
        assert not twice, f"tasks recorded as succeeded more than once: {twice[:5]}"
        assert not outcomes.get("lost"), f"attempts lost to a dead worker: {outcomes}"
        row = conn.execute(
            "SELECT extract(epoch FROM min(started_at)) FROM task_attempts"
            " WHERE task_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchone()
        workers = [
            str(w)
            for (w,) in conn.execute(
                "SELECT DISTINCT worker FROM task_attempts WHERE task_id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        ]
        long_worker = conn.execute(
            "SELECT worker FROM task_attempts WHERE task_id = %s AND outcome = 'succeeded'",
            (ids[-1],),
        ).fetchone()
    assert row is not None and row[0] is not None and long_worker is not None
    first_start = float(row[0])
    assert first_start >= submitted_at - 1, "an attempt started before the tasks were submitted"
    return Records(first_start, sorted(workers), str(long_worker[0]))


def check_pods(report: Report, pods: PodWatch, long_task_worker: str) -> None:
    names = [p.name for p in report.pods]
    assert pods.max_running >= 2, f"the workers never ran on two pods at once: {names}"
    # Each worker is named after its host, the pod: the attempts were made by these pods.
    ran = {p for p in names if any(w.startswith(p) for w in report.workers)}
    assert len(ran) >= 2, f"attempts by {report.workers}, pods {names}"
    unknown = [w for w in report.workers if not any(w.startswith(p) for p in names)]
    assert not unknown, f"attempts by workers outside the watched pods: {unknown}"
    for record in report.pods:
        assert record.exit_code == 0, (
            f"worker pod {record.name} ended with {record.exit_code} ({record.exit_reason}): "
            "a SIGTERM drain exits 0"
        )
    # The operator read each pod's in-flight count from its /healthz into the deletion cost.
    assert any(c not in ("", "0") for p in report.pods for c in p.costs), (
        f"no pod ever had a non-zero deletion cost: {[(p.name, p.costs) for p in report.pods]}"
    )
    # Idle pods go first: no pod is removed while a pod with a lower cost stays, and the pod
    # running the long task outlives the others.
    for name, cost, others in pods.deletion_order:
        idler = [o for o, c in others.items() if int(c or 0) < int(cost or 0)]
        assert not idler, f"{name} (cost {cost}) was removed while idler pods stayed: {others}"
    busy = next(p for p in report.pods if long_task_worker.startswith(p.name))
    gone = busy.deleted_at or 0.0
    outlived = [p.name for p in report.pods if p.first_seen < gone < (p.deleted_at or 0.0)]
    assert not outlived, f"{busy.name} ran the long task but went before {outlived}"


def dump_state(cluster: Cluster) -> str:
    """What a failure report needs: the objects, recent events, the operator's log."""
    parts = []
    for args in (
        ["get", "tq,tasks,deploy,pods", "-o", "wide"],
        ["get", "events", "--sort-by=.lastTimestamp"],
        ["logs", f"deploy/{RELEASE}-operator", "--tail=80"],
        ["logs", f"deploy/{RELEASE}-api", "--tail=40", "--all-containers"],
    ):
        result = subprocess.run(
            [cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
    return "\n".join(parts)


def run_end_to_end(cluster: Cluster, report_path: Path) -> Report:
    """The scenario; on failure the cluster's state is part of the message; always uninstalls."""
    try:
        return run_scenario(cluster, report_path)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{dump_state(cluster)}") from None
    finally:
        uninstall(cluster)


def uninstall(cluster: Cluster) -> None:
    """The TaskQueue first (the operator removes its finalizer), then the release."""
    for args in (
        [cluster.kubectl, f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE, "delete",
         "tq,tasks", "--all", "--wait=true", "--timeout=60s"],
        [cluster.helm, f"--kubeconfig={cluster.kubeconfig}", "uninstall", RELEASE, "-n",
         NAMESPACE, "--wait", "--timeout=120s"],
    ):  # fmt: skip
        subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
