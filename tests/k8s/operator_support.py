"""Helpers of the operator's cluster tests: CRDs installed, the operator run in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow_operator.crd import GROUP, VERSION
from taskflow_operator.crdgen import DEFAULT_DIRS
from taskflow_operator.runner import serve
from taskflow_operator.settings import OperatorConfig
from tests.k8s.controlplane import eventually

T = TypeVar("T")
CRD_DIR = DEFAULT_DIRS[0]


def install_crds(api: client.ApiClient, timeout: float = 60.0) -> None:
    ext = client.ApiextensionsV1Api(api)
    names = []
    bodies = [b for p in sorted(CRD_DIR.glob("*.yaml")) for b in yaml.safe_load_all(p.read_text())]
    for body in bodies:
        names.append(body["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            live = ext.read_custom_resource_definition(body["metadata"]["name"])
            body["metadata"]["resourceVersion"] = live.metadata.resource_version
            ext.replace_custom_resource_definition(body["metadata"]["name"], body)

    def established() -> bool:
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            conds = (crd.status and crd.status.conditions) or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    eventually(established, timeout, "CRDs established")


async def await_(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """``eventually`` for async tests: the check runs in a thread; the loop keeps serving."""
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        await asyncio.sleep(interval)


class RunningOperator:
    """The operator in its own thread and event loop, as ``taskflow operator`` runs it."""

    def __init__(self, config: OperatorConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._handler: logging.Handler | None = None

    def start(self, timeout: float = 30.0) -> RunningOperator:
        if self.log_path is not None:
            self._handler = logging.FileHandler(self.log_path)
            self._handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            for name in ("kopf", "taskflow"):
                logging.getLogger(name).addHandler(self._handler)
                logging.getLogger(name).setLevel(logging.INFO)
        self._thread = threading.Thread(target=self._run, name="taskflow-operator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError(f"operator not ready within {timeout}s: {self.error!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(serve(self.config, stop_flag=self._stop, ready_flag=self._ready))  # type: ignore[arg-type]
        except BaseException as exc:  # reported by the test
            self.error = exc

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "operator did not stop"
        if self._handler is not None:
            for name in ("kopf", "taskflow"):
                logging.getLogger(name).removeHandler(self._handler)
            self._handler.close()


@contextlib.contextmanager
def operator(config: OperatorConfig, log_path: Path | None = None) -> Iterator[RunningOperator]:
    running = RunningOperator(config, log_path).start()
    try:
        yield running
    finally:
        running.stop()
    assert running.error is None, running.error


def taskqueue(name: str, secret: str = "taskflow-connection", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TaskQueue",
        "metadata": {"name": name},
        "spec": {
            "image": "registry.example/taskflow-worker:test",
            "app": "taskflow_worker.examples:router",
            "connection": {"secretName": secret},
            **spec,
        },
    }


def task(name: str, queue: str, handler: str, payload: Any = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"queue": queue, "handler": handler, "payload": payload, **spec},
    }


class Objects:
    """TaskFlow custom objects of one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return out

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            out: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
            return out
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, body
        )

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def deployment(self, name: str) -> client.V1Deployment | None:
        try:
            return self.apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(plural, name) or {}
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return dict(cond)
        return None


def operator_config(kubeconfig: Path, *namespaces: str, **overrides: Any) -> OperatorConfig:
    """A test operator: only these namespaces, no HTTP ports, no peering."""
    fields: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "namespaces": tuple(namespaces),
        "http_port": 0,
        "liveness_endpoint": "",
        "standalone": True,
        "task_poll_seconds": 0.5,
        **overrides,
    }
    return OperatorConfig(**fields)


@contextlib.contextmanager
def extra_namespace(api: client.ApiClient, name: str) -> Iterator[str]:
    """A second namespace for cross-namespace tests (``k8s_namespace`` gives the first)."""
    core = client.CoreV1Api(api)
    labels = {"taskflow.dev/test": "true"}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
