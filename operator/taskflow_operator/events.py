"""Events posted from the operator's own loops (kopf's ``kopf.info``/``kopf.warn`` work only
inside its handlers). Best effort, as kopf's are: a refused Event is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from taskflow_operator.conditions import now_rfc3339
from taskflow_operator.kube import Kube

log = logging.getLogger("taskflow.operator.events")
COMPONENT = "taskflow-operator"
MAX_MESSAGE = 1024
NORMAL, WARNING = "Normal", "Warning"


def event_body(obj: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = obj["metadata"]
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


async def post_event(
    kube: Kube, obj: dict[str, Any], type_: str, reason: str, message: str
) -> None:
    body = event_body(obj, type_, reason, message)
    try:
        await asyncio.to_thread(
            kube.core.create_namespaced_event, obj["metadata"]["namespace"], cast(Any, body)
        )
    except ApiException as exc:
        log.warning("event %s on %s not posted: %s", reason, obj["metadata"]["name"], exc.reason)
