"""The Kubernetes API calls the operator makes besides kopf's own.

The client library blocks; its calls run on the client's own thread pool, as wide as its
connection pool (``pool_size``), so a burst of status patches neither queues behind the event
loop's default executor nor discards connections."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from taskflow_operator.crd import GROUP, VERSION

T = TypeVar("T")
#: Connections (and threads) of the client: status patches of many Tasks at once.
DEFAULT_POOL_SIZE = 32


def load_configuration(kubeconfig: Path | None) -> client.Configuration:
    """From a kubeconfig file when given, else the pod's service account."""
    cfg = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=cfg
        )
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def _json(response: Any) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(response.data))


class Kube:
    def __init__(
        self, configuration: client.Configuration, pool_size: int = DEFAULT_POOL_SIZE
    ) -> None:
        # Twice the threads: a connection still being released is not discarded.
        configuration.connection_pool_maxsize = 2 * pool_size
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="kube")
        self.api = client.ApiClient(configuration)
        self.apps = client.AppsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]
        self._threads.shutdown(wait=False)

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(call, *args, **kwargs))

    async def _or_none(self, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        try:
            response = await self._run(call, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _json(response)

    # -- deployments --------------------------------------------------------------------------

    async def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._or_none(
            self.apps.read_namespaced_deployment, name, namespace, _preload_content=False
        )

    async def create_deployment(self, body: dict[str, Any]) -> None:
        ns = body["metadata"]["namespace"]
        await self._run(self.apps.create_namespaced_deployment, ns, cast(Any, body))

    async def replace_deployment(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        await self._run(
            self.apps.replace_namespaced_deployment,
            meta["name"],
            meta["namespace"],
            cast(Any, body),
        )

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        await self._run(
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
        )

    # -- pods ---------------------------------------------------------------------------------

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        response = await self._run(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        return cast(list[dict[str, Any]], _json(response).get("items", []))

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        await self._run(
            self.core.patch_namespaced_pod,
            name,
            namespace,
            {"metadata": {"annotations": annotations}},
        )

    # -- custom objects -----------------------------------------------------------------------

    async def get_object(
        self, plural: str, namespace: str, name: str, group: str = GROUP, version: str = VERSION
    ) -> dict[str, Any] | None:
        return await self._or_none(
            self.custom.get_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
            _preload_content=False,
        )

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        await self._run(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"status": status},
        )

    async def patch_status_if_exists(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> bool:
        """Merge ``status`` into the object's; False when the object is gone."""
        try:
            await self.patch_status(plural, namespace, name, status)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list_objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of one namespace, or of every namespace when ``namespace`` is None."""
        if namespace is None:
            response = await self._run(
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
                _preload_content=False,
            )
        else:
            response = await self._run(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                _preload_content=False,
            )
        items: list[dict[str, Any]] = _json(response).get("items") or []
        return items

    async def delete_object(
        self, plural: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        """Delete (gone already is fine); with ``uid``, only that object, not a namesake
        created since."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            await self._run(
                self.custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body=options if uid else None,
            )
        except ApiException as exc:
            if exc.status == 404 or (uid and exc.status == 409):
                return
            raise

    async def apply_object(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> bool:
        """Create, or replace when it differs in spec; True when something was written."""
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        live = await self.get_object(plural, ns, name, group, version)
        if live is None:
            await self._run(
                self.custom.create_namespaced_custom_object, group, version, ns, plural, body
            )
            return True
        if live.get("spec") == body["spec"]:
            return False
        body = {
            **body,
            "metadata": {**meta, "resourceVersion": live["metadata"]["resourceVersion"]},
        }
        await self._run(
            self.custom.replace_namespaced_custom_object, group, version, ns, plural, name, body
        )
        return True
