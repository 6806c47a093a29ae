"""A TaskQueue's worker Deployment (and KEDA ScaledObject): create, keep in step, repair."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pydantic
import urllib3
from kubernetes.client.exceptions import ApiException

from taskflow.keys import QueueRef
from taskflow.models import QueueConfig, RateLimit, RetryPolicy
from taskflow_operator.builders.common import GENERATION, Owner, workers_name
from taskflow_operator.builders.deployment import workers_deployment
from taskflow_operator.builders.drift import drifted
from taskflow_operator.builders.keda import KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS, scaled_object
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd.taskqueue import AutoscalingEngine, TaskQueueSpec
from taskflow_operator.reporting import Failure

log = logging.getLogger("taskflow.operator.workers")


@dataclass(frozen=True)
class WorkersState:
    """What the live Deployment says after reconciling."""

    created: bool
    repaired: list[str]  # fields a hand edit had changed, put back
    updated: list[str]  # fields a spec edit changed, rolled out
    replicas: int  # spec.replicas
    ready: int
    available: int
    failure: str | None  # a Deployment condition that says it cannot progress


class Refused(Exception):
    """The API server would not take an object of the queue's: the pass cannot go on."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def ensure_workers(
    ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec, generation: int | None
) -> WorkersState:
    """Create the Deployment, or bring it in step: a spec edit (the TaskQueue's generation
    moved on) rolls out, anything else that differs is a hand edit and is repaired. Raises
    ``Refused`` when the API server refuses."""
    try:
        return await _ensure_workers(ctx, owner, spec, generation)
    except ApiException as exc:
        raise Refused(refusal(exc, owner)) from None
    except urllib3.exceptions.HTTPError as exc:
        raise Refused(Failure("KubernetesUnavailable", f"the API server: {exc}")) from None
    except pydantic.ValidationError as exc:
        # kubernetes-client 37 checks bodies against the API's models before sending them.
        raise Refused(
            Failure("DeploymentRefused", f"the worker Deployment is invalid: {_client_error(exc)}")
        ) from None


async def _ensure_workers(
    ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec, generation: int | None
) -> WorkersState:
    keda = spec.autoscaling.engine is AutoscalingEngine.KEDA
    live = await ctx.kube.get_deployment(owner.namespace, workers_name(owner.name))
    if live is None:
        initial = None if keda else spec.replicas.min
        await ctx.kube.create_deployment(workers_deployment(owner, spec, initial, generation))
        if keda:
            await _ensure_scaled_object(ctx, owner, spec)
        return WorkersState(True, [], [], 1 if initial is None else initial, 0, 0, None)
    wanted = workers_deployment(owner, spec, None, generation)
    differs = _compare(wanted, live)
    annotations = live["metadata"].get("annotations") or {}
    edited = annotations.get(GENERATION) != str(generation)
    replicas = int(live["spec"].get("replicas", 1))
    if not keda:
        # A new template rolls out to the pods that stay: the new bounds apply first.
        replicas = min(spec.replicas.max, max(spec.replicas.min, replicas))
    if differs or edited:
        wanted["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        wanted["spec"]["replicas"] = replicas
        await ctx.kube.replace_deployment(wanted)
        if differs:
            log.info(
                "%s worker deployment",
                "updated" if edited else "repaired",
                extra={"queue": owner.qualified, "fields": differs},
            )
    if keda:
        await _ensure_scaled_object(ctx, owner, spec)
    status = live.get("status") or {}
    return WorkersState(
        created=False,
        repaired=[] if edited else differs,
        updated=differs if edited else [],
        replicas=replicas,
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        failure=_failure(status),
    )


def refusal(exc: ApiException, owner: Owner) -> Failure:
    """What a refusal of the API server means for the user, in their words."""
    message = _api_message(exc)
    if exc.status == 403:
        return Failure("Forbidden", f"the operator may not write {owner.name}'s objects: {message}")
    if exc.status in (400, 422):
        return Failure(
            "DeploymentRefused", f"the API server refused the worker Deployment: {message}"
        )
    return Failure("KubernetesError", f"{exc.status} {exc.reason}: {message}")


def _client_error(exc: pydantic.ValidationError) -> str:
    """The first error, its path spelled as the API server spells it."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    if loc and isinstance(loc[0], int):
        loc = loc[1:]  # the position of the body among the call's arguments
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return f"{path}: {err['msg']}"


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.body or exc.reason)


def _compare(wanted: dict[str, Any], live: dict[str, Any]) -> list[str]:
    paths = drifted(wanted["spec"], live.get("spec"), "spec")
    paths += drifted(
        wanted["metadata"]["labels"], live["metadata"].get("labels"), "metadata.labels"
    )
    refs = live["metadata"].get("ownerReferences") or []
    if not any(r.get("uid") == wanted["metadata"]["ownerReferences"][0]["uid"] for r in refs):
        paths.append("metadata.ownerReferences")
    return paths


def _failure(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{cond.get('reason')}: {cond.get('message')}"
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"ProgressDeadlineExceeded: {cond.get('message')}"
    return None


async def _ensure_scaled_object(ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec) -> None:
    body = scaled_object(owner, spec, ctx.config.public_url)
    try:
        applied = await ctx.kube.apply_object(KEDA_GROUP, KEDA_VERSION, SCALED_OBJECTS, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise Refused(
            Failure(
                "KedaMissing",
                f"autoscaling.engine is keda but the cluster serves no {KEDA_GROUP}/"
                f"{KEDA_VERSION} ScaledObject: install KEDA, or set autoscaling.engine: builtin",
            )
        ) from None
    if applied:
        log.info("applied KEDA ScaledObject", extra={"queue": owner.qualified})


async def apply_queue_settings(ctx: OperatorContext, owner: Owner, spec: TaskQueueSpec) -> None:
    """The engine applies the TaskQueue's retry defaults, task timeout and rate limit."""
    rate = spec.rate_limit
    retry = spec.retry
    await ctx.engine.configure_queue(
        QueueRef(owner.namespace, owner.name),
        QueueConfig(
            max_retries=retry.max_retries,
            retry=RetryPolicy(
                initial_seconds=retry.initial_seconds,
                multiplier=retry.multiplier,
                max_seconds=retry.max_seconds,
            ),
            timeout_seconds=spec.task_timeout_seconds,
            rate=RateLimit(rate.per_second, rate.burst) if rate else None,
        ),
    )
