"""The dashboard's aiohttp application (docs/architecture.md, "The web dashboard").

Read-only but for the Jobs API: every route is a GET but the login and logout POSTs and the
job routes (``GET /login?token=...`` also
logs in: the link a local session prints). Pages are the static files of
this package (``static/``: plain HTML, CSS and JavaScript, no build step, nothing fetched from
elsewhere); the pages read the JSON API under ``/api/``:

| path | answers |
|---|---|
| ``/api/cluster`` | `actorcore.status.gather_status`: nodes, resources, object store, actors by state |
| ``/api/actors`` | ``{"actors": [...]}``: the etcd actor records (`ACTOR_FIELDS`) |
| ``/api/supervision`` | the ``supervise`` daemon, its tree, its services (`services.status.gather`); ``groups``: |
| | users' supervision groups (`actorcore.supervision_records.gather_groups`) |
| ``/api/tasks`` | ``{"tasks": [...], "available", "note"}`` from the `StateSource` (``?limit=N``) |
| ``/api/objects`` | ``{"objects": [...], "available", "note"}`` likewise |
| ``/logs``, ``/api/logs`` | an actor's or a worker's log (`dashboard.logs`), given the node's actor system |
| ``/api/jobs/...`` | Ray's Jobs API (`dashboard.jobs`): the only routes that change anything |

An etcd that does not answer makes an API call fail with 503 and a JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from .._logging import get_logger
from ..gcs import schema
from ..runtime_env.packaging import MAX_PACKAGE_BYTES
from ..services.status import gather as gather_supervision
from ..status import gather_status
from ..supervision_records import gather_groups
from .auth import COOKIE_NAME, SessionKeeper, auth_middleware
from .jobs import add_job_routes
from .logs import add_log_routes
from .sources import StateSource, UnavailableStateSource

__all__ = ["ACTOR_FIELDS", "DEFAULT_LIMIT", "make_app"]

log = get_logger(__name__)

ACTOR_FIELDS = ("actor_id", "class_name", "name", "namespace", "state", "node_id", "pid", "restarts", "death_cause")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
_PAGES = {"/": "index.html", "/login": "login.html"}
_STATIC = ("dashboard.css", "dashboard.js")
_CONTENT_TYPES = {"html": "text/html", "css": "text/css", "js": "text/javascript"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def make_app(etcd: Any, token: str, *, cluster: str = schema.DEFAULT_CLUSTER,
             source: StateSource | None = None,
             url: Callable[[], str | None] = lambda: None, system: Any = None,
             jobs: Any = None) -> web.Application:
    """The dashboard of the cluster whose etcd is `etcd` (a `SealedEtcd`), guarded by the
    cluster `token`; `source` lists tasks and objects (default: `UnavailableStateSource`);
    `url()` is the URL it is served at, once known; with the node's actor `system` it also
    serves the log view (`dashboard.logs`); `jobs` is the head's JobManager (None: the Jobs API
    answers 503)."""
    keeper = SessionKeeper(token)
    source = source or UnavailableStateSource()
    assets = {name: _asset(name) for name in (*_PAGES.values(), *_STATIC)}

    def asset(name: str, status: int = 200, text: str | None = None) -> web.Response:
        return web.Response(text=assets[name] if text is None else text, status=status,
                            content_type=_CONTENT_TYPES[name.rsplit(".", 1)[-1]])

    async def page(request: web.Request) -> web.Response:
        given = request.query.get("token") if request.path == "/login" else None
        if given is not None:  # the link a local session prints: log in at once, drop the token from the URL
            if not keeper.token_matches(given):
                failed = assets["login.html"].replace('id="login-error" hidden', 'id="login-error"')
                return asset("login.html", status=401, text=failed)
            response = web.HTTPSeeOther("/")
            keeper.set_cookie(request, response)
            raise response
        return asset(_PAGES[request.path])

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return asset(name)

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        given = form.get("token")
        if not isinstance(given, str) or not keeper.token_matches(given):
            failed = assets["login.html"].replace('id="login-error" hidden', 'id="login-error"')
            return asset("login.html", status=401, text=failed)
        target = request.query.get("next", "/")
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"  # only this site's paths: never an open redirect
        response = web.HTTPSeeOther(target)
        keeper.set_cookie(request, response)
        raise response

    async def logout(request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE_NAME, path="/")
        raise response

    async def api_cluster(request: web.Request) -> web.Response:
        status = await gather_status(etcd, cluster)
        status["dashboard_url"] = url()
        return web.json_response(status)

    async def api_actors(request: web.Request) -> web.Response:
        rows = []
        for _key, value in await etcd.get_prefix(schema.key(cluster, "actors", "")):
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                rows.append({name: record.get(name) for name in ACTOR_FIELDS})
        rows.sort(key=lambda row: (row["state"] == "DEAD", str(row["class_name"]), str(row["actor_id"])))
        return web.json_response({"actors": rows})

    async def api_supervision(request: web.Request) -> web.Response:
        status = await gather_supervision(etcd, cluster)
        status["groups"] = await gather_groups(etcd, cluster)
        return web.json_response(status)

    def listing(kind: str):
        async def handler(request: web.Request) -> web.Response:
            limit = _limit(request)
            rows = await getattr(source, kind)(limit)
            body = {kind: rows[:limit], "available": getattr(source, "available", True)}
            if getattr(source, "note", None):
                body["note"] = source.note
            return web.json_response(body)
        return handler

    @web.middleware
    async def headers_and_errors(request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as answer:
            answer.headers.update(_SECURITY_HEADERS)
            raise
        except (OSError, TimeoutError) as error:  # EtcdUnavailableError, EtcdAuthError among them
            log.debug("dashboard: etcd did not answer", path=request.path, error=str(error))
            response = web.json_response({"error": f"the cluster's etcd did not answer: {error}"}, status=503)
        response.headers.update(_SECURITY_HEADERS)
        return response

    # a request body may be a working_dir package (`dashboard.jobs`)
    app = web.Application(middlewares=[headers_and_errors, auth_middleware(keeper)],
                          client_max_size=MAX_PACKAGE_BYTES + (1 << 20))
    app.router.add_get("/", page)
    app.router.add_get("/login", page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_get("/api/cluster", api_cluster)
    app.router.add_get("/api/actors", api_actors)
    app.router.add_get("/api/supervision", api_supervision)
    app.router.add_get("/api/tasks", listing("tasks"))
    app.router.add_get("/api/objects", listing("objects"))
    if system is not None:
        add_log_routes(app, etcd, cluster, system)
    add_job_routes(app, etcd, cluster, jobs)
    return app


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"limit must be an integer from 1 to {MAX_LIMIT}, "
                                                           f"got {text!r}"}), content_type="application/json")
    return int(text)
