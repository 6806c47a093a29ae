"""kopf peering (one active operator among those sharing a peering name), set up at start.

* ``--standalone``: no peering; this operator always leads.
* Otherwise the peering object (``ClusterKopfPeering`` when serving every namespace, a
  ``KopfPeering`` in each served namespace otherwise) named ``--peering`` is used, and created
  when missing, so an operator started by hand acts at once instead of idling until someone
  creates it. The Helm chart names it after the release, so two releases never share one.
* Without kopf's peering CRDs in the cluster the operator runs standalone and says so.
* Priority: ``--priority``, else seniority: of identical replicas (the chart's), the one that
  started first leads; kopf pauses the others, and would pause all of them on a tie.
* Identity: ``$POD_ID`` (the chart sets the pod name), else ``user@host/pid/random``. A container
  that crashed and restarted in its pod keeps its identity, so its old record is its own, not
  a peer's to wait for; by hand, the records of dead processes of this host are removed at
  start. Either way a restart acts at once rather than pausing until the old record expires.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator.peering")
GROUP, VERSION = "kopf.dev", "v1"
CLUSTER = ("ClusterKopfPeering", "clusterkopfpeerings")
NAMESPACED = ("KopfPeering", "kopfpeerings")


def identity() -> str:
    """``$POD_ID``, else ``user@host/pid/random`` (operators may share a process in tests)."""
    pod = os.environ.get("POD_ID")
    return pod or f"{_host_prefix()}{os.getpid()}/{secrets.token_hex(3)}"


def _host_prefix() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}/"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_records(
    status: dict[str, Any], own: str, prefix: str, alive: Callable[[int], bool] = _alive
) -> list[str]:
    """Records of processes of this host (``prefix``) that are gone: a crashed predecessor."""
    out = []
    for ident in status:
        pid = ident.removeprefix(prefix).split("/")[0]
        if ident != own and ident.startswith(prefix) and pid.isdigit() and not alive(int(pid)):
            out.append(ident)
    return out


@dataclass(frozen=True)
class Peering:
    """Where the peering objects are: ``namespaces`` empty means the cluster-wide one."""

    name: str
    namespaces: tuple[str, ...]

    @property
    def kind(self) -> tuple[str, str]:
        return NAMESPACED if self.namespaces else CLUSTER

    @property
    def crd(self) -> str:
        return f"{self.kind[1]}.{GROUP}"

    def places(self) -> Iterable[str | None]:
        return self.namespaces or (None,)


async def configure(settings: kopf.OperatorSettings, config: OperatorConfig, api: Any) -> None:
    """Decide standalone or peered before kopf starts watching; create what is missing."""
    if config.standalone:
        log.info("standalone: no peering, this operator always leads")
        return
    peering = Peering(config.peering_name, config.namespaces)
    for namespace in peering.places():
        if not await asyncio.to_thread(_ensure_object, api, peering, namespace):
            log.warning(
                "kopf's peering CRD %s is not installed: running standalone (run one operator "
                "only, or install crds/kopf-peering.yaml for leader election)",
                peering.crd,
            )
            settings.peering.standalone = True
            settings.peering.mandatory = False
            return
    if config.priority is None:
        settings.peering.priority = seniority()
    where = ", ".join(peering.namespaces) or "cluster-wide"
    log.info(
        "peering %r (%s, priority %d) as %s",
        peering.name,
        where,
        settings.peering.priority,
        identity(),
    )


def seniority(now_ns: int | None = None) -> int:
    """A priority that is higher the earlier the operator started (its start time in
    microseconds, negated): identical replicas never tie, so one leads and the others wait,
    and a restarted replica does not take the lead from one that kept running."""
    return -((time.time_ns() if now_ns is None else now_ns) // 1000)


def _ensure_object(api: Any, peering: Peering, namespace: str | None) -> bool:
    """Create the peering object when missing; False when the cluster has no such resource."""
    custom = client.CustomObjectsApi(api)
    kind, plural = peering.kind
    what = f"{kind} {peering.name}" + (f" in {namespace}" if namespace else "")
    try:
        if namespace is None:
            body = cast(
                dict[str, Any],
                custom.get_cluster_custom_object(GROUP, VERSION, plural, peering.name),
            )
        else:
            body = cast(
                dict[str, Any],
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, peering.name
                ),
            )
    except ApiException as exc:
        if exc.status != 404:
            raise
        if not _names_an_object(exc):
            return False  # the resource itself is unknown: no CRD
        _create(custom, peering, namespace, what)
        return True
    _forget_dead_predecessors(custom, peering, namespace, dict(body.get("status") or {}))
    return True


def _names_an_object(exc: ApiException) -> bool:
    """A 404 about a missing object names it; one about a missing resource type does not."""
    try:
        details = json.loads(exc.body or "{}").get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(details.get("name"))


def _create(custom: Any, peering: Peering, namespace: str | None, what: str) -> None:
    kind, plural = peering.kind
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": peering.name, "labels": {"app.kubernetes.io/part-of": "taskflow"}},
    }
    try:
        if namespace is None:
            custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
        else:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, obj)
    except ApiException as exc:
        if exc.status == 409:
            return  # a peer created it meanwhile
        if exc.status == 403:
            raise kopf.PermanentError(
                f"the peering object {what} is missing and this operator may not create it: "
                "create it, pass --peering NAME of an existing one, or --standalone"
            ) from None
        raise
    log.info("created the peering object %s", what)


def _forget_dead_predecessors(
    custom: Any, peering: Peering, namespace: str | None, status: dict[str, Any]
) -> None:
    dead = dead_local_records(status, identity(), _host_prefix())
    if not dead:
        return
    patch = {"status": dict.fromkeys(dead)}
    _, plural = peering.kind
    if namespace is None:
        custom.patch_cluster_custom_object(GROUP, VERSION, plural, peering.name, patch)
    else:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, peering.name, patch
        )
    log.info("removed the peering records of exited processes of this host: %s", dead)
