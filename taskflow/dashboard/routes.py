"""The dashboard as an aiohttp application, mounted at ``/dashboard/`` on the API's HTTP port.

* ``/dashboard/``: the single-page UI (``static/``, served from the package).
* ``/dashboard/api/...``: read-only JSON (queues with their history, tasks, a task, DAG runs, a
  run, workers, schedules) and, only when ``TASKFLOW_DASHBOARD_ACTIONS=1``, the actions
  (cancel, replay, run cancel and retry) as ``POST`` with a JSON body.

When the API needs tokens (``TASKFLOW_API_TOKEN`` or a tokens file) every ``/dashboard/api``
call but ``config`` needs ``Authorization: Bearer <token>``, checked by the same registry as the
RPCs; the page asks for it. The dashboard shows every namespace, so it takes a token that
reaches all of them: role ``read`` for the pages, ``submit`` to cancel, ``admin`` to replay and
retry. A token scoped to some namespaces is refused (403) rather than shown other tenants' work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from taskflow.dashboard.reads import (
    DashboardReads,
    TaskFilter,
    check_name,
    check_page_size,
    check_states,
)
from taskflow.dashboard.samples import QueueSampler
from taskflow.dashboard.settings import DashboardSettings
from taskflow.dashboard.views import (
    queue_view,
    run_summary_view,
    run_view,
    schedule_view,
    task_row_view,
    task_view,
    worker_view,
)
from taskflow.engine import Engine
from taskflow.errors import (
    STORE_ERRORS,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    TaskFlowError,
    Unavailable,
)
from taskflow.models import utcnow
from taskflow.workflows.service import DagService

if TYPE_CHECKING:
    from taskflow.api.tokens import TokenRegistry

log = logging.getLogger("taskflow.dashboard")

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return json_response(body, status)


def auth_problem(request: web.Request, tokens: TokenRegistry | None) -> tuple[int, str] | None:
    """Why the request may not use the API, as an HTTP status and a text (None: it may)."""
    # Imported here: the API server imports this module while ``taskflow.api`` initialises.
    from taskflow.api.auth import bearer_token
    from taskflow.api.tokens import Role

    if tokens is None or not tokens.enabled:
        return None
    given = bearer_token([("authorization", request.headers.get("Authorization", ""))])
    if given is None:
        return 401, "missing header 'Authorization: Bearer <token>'"
    principal = tokens.authenticate(given)
    if principal is None:
        return 401, "invalid token"
    if principal.scoped:
        return 403, (
            f"token {principal.name!r} is limited to some namespaces; the dashboard shows "
            "every namespace and needs a token that reaches all of them"
        )
    if request.method == "GET":
        role = Role.READ
    elif request.path.endswith("/cancel"):
        role = Role.SUBMIT
    else:
        role = Role.ADMIN
    if not principal.has(role):
        return 403, f"token {principal.name!r} lacks the role {role.value!r}"
    return None


class Dashboard:
    """The routes over one engine; ``app()`` is the sub-application to mount."""

    def __init__(
        self,
        engine: Engine,
        *,
        dags: DagService | None = None,
        settings: DashboardSettings | None = None,
        tokens: TokenRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.tokens = tokens
        self.settings = settings or DashboardSettings.from_env()
        self.reads = DashboardReads(engine, dags)
        self.sampler = QueueSampler(
            lambda: engine.list_queues(None),
            interval=self.settings.sample_seconds,
            size=self.settings.samples,
        )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/", self.index)
        r.add_static("/static/", STATIC, append_version=False)
        api = {
            "/api/config": self.config,
            "/api/queues": self.queues,
            "/api/tasks": self.tasks,
            "/api/tasks/{task_id}": self.task,
            "/api/handlers": self.handlers,
            "/api/dags": self.runs,
            "/api/dags/{run_id}": self.run,
            "/api/workers": self.workers,
            "/api/schedules": self.schedule_list,
        }
        for path, handler in api.items():
            r.add_get(path, handler)
        r.add_post("/api/tasks/{task_id}/cancel", self.cancel_task)
        r.add_post("/api/tasks/{task_id}/replay", self.replay_task)
        r.add_post("/api/dags/{run_id}/cancel", self.cancel_run)
        r.add_post("/api/dags/{run_id}/retry", self.retry_run)
        r.add_route("*", "/api/{rest:.*}", self.unknown)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.sampler.start()

    async def _stop(self, app: web.Application) -> None:
        await self.sampler.stop()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        api = request.path.startswith(f"{PREFIX}/api/")
        try:
            if api and not request.path.endswith("/api/config"):
                problem = auth_problem(request, self.tokens)
                if problem is not None:
                    status, text = problem
                    response: web.StreamResponse = _error(status, text)
                    if status == 401:
                        response.headers["WWW-Authenticate"] = 'Bearer realm="taskflow"'
                    return response
            response = await handler(request)
        except (InvalidArgument, PayloadTooLarge) as exc:
            response = _error(400, str(exc), getattr(exc, "field", None))
        except NotFound as exc:
            response = _error(404, str(exc))
        except Unavailable as exc:
            response = _error(503, str(exc))
        except TaskFlowError as exc:
            response = _error(409, str(exc))
        except STORE_ERRORS as exc:
            response = _error(503, f"storage unavailable: {exc}")
        except web.HTTPException as exc:
            if not api:
                raise
            response = _error(exc.status, exc.reason)
        except Exception:
            log.exception("dashboard request %s failed", request.path)
            response = _error(500, "internal error; see the server log")
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    # -- the page --------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def unknown(self, request: web.Request) -> web.Response:
        return _error(404, f"no such dashboard API: {request.method} {request.path}")

    # -- reads -----------------------------------------------------------------------------

    async def config(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "actions": self.settings.actions,
                "auth_required": self.tokens is not None and self.tokens.enabled,
                "sample_seconds": self.settings.sample_seconds,
                "lease_seconds": self.engine.settings.lease_seconds,
            }
        )

    async def queues(self, request: web.Request) -> web.Response:
        namespace = check_name(request.query.get("namespace"), "namespace", namespace=True)
        stats = await self.engine.list_queues(namespace)
        history = {
            name: [p.as_dict() for p in points]
            for name, points in self.sampler.history().items()
            if not namespace or name.startswith(f"{namespace}/")
        }
        return json_response(
            {
                "queues": [queue_view(s) for s in stats],
                "history": history,
                "sample_seconds": self.sampler.interval,
            }
        )

    async def tasks(self, request: web.Request) -> web.Response:
        q = request.query
        states: list[str] = []
        for raw in q.getall("state", []):
            states += [s for s in raw.split(",") if s]
        f = TaskFilter(
            namespace=check_name(q.get("namespace"), "namespace", namespace=True) or "default",
            queue=check_name(q.get("queue"), "queue"),
            states=check_states(states),
            handler=check_name(q.get("handler"), "handler"),
            id_prefix=q.get("id") or None,
        )
        limit = check_page_size(q.get("limit"))
        rows, token = await self.reads.tasks(f, limit, q.get("before") or None)
        return json_response({"tasks": [task_row_view(r.fields) for r in rows], "next": token})

    async def task(self, request: web.Request) -> web.Response:
        task = await self.reads.task(request.match_info["task_id"])
        body = task_view(task)
        body["actions"] = self._task_actions(task.done, task.state.value)
        return json_response(body)

    async def handlers(self, request: web.Request) -> web.Response:
        namespace = check_name(request.query.get("namespace"), "namespace", namespace=True)
        return json_response({"handlers": await self.reads.handlers(namespace or "default")})

    async def runs(self, request: web.Request) -> web.Response:
        q = request.query
        namespace = check_name(q.get("namespace"), "namespace", namespace=True) or "default"
        states = [s for raw in q.getall("state", []) for s in raw.split(",") if s]
        limit = check_page_size(q.get("limit"))
        runs, counts, token = await self.reads.runs(namespace, states, limit, q.get("before"))
        return json_response(
            {"runs": [run_summary_view(r, counts.get(r.id, {})) for r in runs], "next": token}
        )

    async def run(self, request: web.Request) -> web.Response:
        run = await self.reads.run(request.match_info["run_id"])
        body = run_view(run)
        body["actions"] = (
            {"cancel": run.state == "running", "retry": run.state in ("failed", "cancelled")}
            if self.settings.actions
            else {}
        )
        return json_response(body)

    async def workers(self, request: web.Request) -> web.Response:
        now = utcnow()
        alive, stale = await self.reads.workers(now)
        return json_response(
            {"workers": [worker_view(w, now) for w in alive], "stale_hidden": stale}
        )

    async def schedule_list(self, request: web.Request) -> web.Response:
        q = request.query
        namespace = check_name(q.get("namespace"), "namespace", namespace=True)
        limit = check_page_size(q.get("limit"))
        rows, token = await self.reads.schedule_page(namespace, limit, q.get("after"))
        now = utcnow()
        return json_response({"schedules": [schedule_view(r, now) for r in rows], "next": token})

    # -- actions ---------------------------------------------------------------------------

    def _task_actions(self, done: bool, state: str) -> dict[str, bool]:
        if not self.settings.actions:
            return {}
        return {"cancel": not done, "replay": state == "failed"}

    def _check_action(self, request: web.Request) -> None:
        if not self.settings.actions:
            raise web.HTTPForbidden(
                reason="dashboard actions are off (set TASKFLOW_DASHBOARD_ACTIONS=1 to allow them)"
            )
        # A form on another site cannot send JSON without a CORS preflight, which this server
        # never answers: an action is always the dashboard's own request.
        if request.content_type != "application/json":
            raise InvalidArgument("Content-Type", "an action must be sent as application/json")

    async def cancel_task(self, request: web.Request) -> web.Response:
        self._check_action(request)
        task = await self.engine.cancel(request.match_info["task_id"])
        log.info("task %s cancelled from the dashboard", task.id)
        return json_response({"id": task.id, "state": task.state.value})

    async def replay_task(self, request: web.Request) -> web.Response:
        self._check_action(request)
        task = await self.engine.get(request.match_info["task_id"])
        if task.state.value != "failed":
            raise InvalidArgument("task_id", f"task {task.id} is {task.state.value}, not failed")
        replayed = await self.engine.replay(task.queue_ref, [task.id])
        log.info("task %s replayed from the dashboard", task.id)
        return json_response({"replayed": replayed})

    async def cancel_run(self, request: web.Request) -> web.Response:
        self._check_action(request)
        run = await self.reads.dags.cancel(request.match_info["run_id"])
        return json_response({"id": run.id, "state": run.state})

    async def retry_run(self, request: web.Request) -> web.Response:
        self._check_action(request)
        run = await self.reads.dags.retry(request.match_info["run_id"])
        return json_response({"id": run.id, "state": run.state})
