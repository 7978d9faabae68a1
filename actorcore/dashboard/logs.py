"""The dashboard's log view of an actor or a worker (docs/architecture.md, "Logs" and "The web
dashboard"), behind the dashboard's authentication like every other route.

| path | answers |
|---|---|
| ``/logs?actor_id=ID`` (or ``?node_id=N&pid=P``; ``&stream=stderr``) | the log page (``static/logs.html``) |
| ``/logs/view.js`` | its script: the last lines, then what is written while "follow" is on |
| ``/api/logs`` | ``{"node_id", "name", "text", "offset", "file_id"}`` from the node's LogService |

``/api/logs`` takes ``actor_id`` (its etcd record names its node and pid), or ``node_id`` with
``pid``, ``worker_id`` or ``name`` (a file as ``actorcore logs`` lists it); then ``tail`` (the
last N lines, default 1000) or ``offset`` (read on from there, in the file ``file_id`` if given:
one rotated since is read from its start), and ``stream`` (``stdout`` or
``stderr``). An unknown actor, node or file answers 404 with a JSON error; a bad parameter 400.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aiohttp import web

from ..gcs import schema
from ..protocol import ReadLog

__all__ = ["DEFAULT_TAIL", "add_log_routes"]

DEFAULT_TAIL = 1000
MAX_TAIL = 100_000
ANSWER_BYTES = 1 << 20
ASK_TIMEOUT = 10.0


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _bad(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def _whole(query, name: str, default: int | None, maximum: int) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > maximum:
        raise _bad(web.HTTPBadRequest, f"{name} must be a whole number from 0 to {maximum}, got {text!r}")
    return int(text)


def add_log_routes(app: web.Application, etcd: Any, cluster: str, system: Any) -> None:
    """Add the log routes to the dashboard `app`: `etcd` (a `SealedEtcd`-like reader) finds the
    actor and node records, `system` (the node's actor system) asks the nodes' LogServices."""
    page, script = _asset("logs.html"), _asset("logs.js")

    async def logs_page(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def logs_script(_request: web.Request) -> web.Response:
        return web.Response(text=script, content_type="text/javascript")

    async def record(kind: str, record_id: str) -> dict:
        value = await etcd.get(schema.key(cluster, kind, record_id))
        if not value:
            what = "actor" if kind == "actors" else "live node"
            raise _bad(web.HTTPNotFound, f"no {what} with id {record_id!r}")
        return json.loads(value)

    async def api_logs(request: web.Request) -> web.Response:
        query = request.query
        stream = query.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise _bad(web.HTTPBadRequest, f"stream must be 'stdout' or 'stderr', got {stream!r}")
        offset = _whole(query, "offset", None, 1 << 62)
        tail = -1 if offset is not None else _whole(query, "tail", DEFAULT_TAIL, MAX_TAIL)
        pid = _whole(query, "pid", None, 1 << 31)
        if query.get("actor_id"):
            actor = await record("actors", query["actor_id"])
            if not actor.get("pid") or not actor.get("node_id"):
                raise _bad(web.HTTPNotFound, f"actor {query['actor_id']} has not started on a worker yet")
            node_id, pid = actor["node_id"], int(actor["pid"])
        elif query.get("node_id") and (pid is not None or query.get("worker_id") or query.get("name")):
            node_id = query["node_id"]
        else:
            raise _bad(web.HTTPBadRequest, "name an actor_id, or a node_id with a pid, worker_id or name")
        uri = (await record("nodes", node_id)).get("uris", {}).get("logs")
        if not uri:
            raise _bad(web.HTTPNotFound, f"node {node_id} has no log service")
        answer = await system.ref_from_uri(uri).ask(
            ReadLog(name=query.get("name"), pid=pid, worker_id=query.get("worker_id"), stream=stream,
                    tail=tail, offset=offset or 0, max_bytes=ANSWER_BYTES,
                    file_id=_whole(query, "file_id", None, 1 << 64)), timeout=ASK_TIMEOUT)
        if "error" in answer:
            raise _bad(web.HTTPNotFound, answer["error"])
        return web.json_response({"node_id": node_id, "name": answer["name"], "offset": answer["offset"],
                                  "file_id": str(answer["file_id"]), "text": answer["data"].decode(errors="replace")})

    app.router.add_get("/logs", logs_page)
    app.router.add_get("/logs/view.js", logs_script)
    app.router.add_get("/api/logs", api_logs)
