"""The dashboard's Jobs API, Ray's REST shape (docs/architecture.md, "Jobs"), behind the
dashboard's authentication like every other route.

| route | answers |
|---|---|
| ``POST /api/jobs/`` | submit (`SubmitRequest`): ``{"submission_id", "job_id"}``; 400: bad request, duplicate id |
| ``GET /api/jobs/`` | a JSON list of every job's `JobDetails` |
| ``GET /api/jobs/{id}`` | the job's `JobDetails` |
| ``GET /api/jobs/{id}/logs`` | ``{"logs": text}``: its whole log |
| ``GET /api/jobs/{id}/logs/tail`` | a websocket: the log as text messages, closed once the job ended and all is sent |
| ``POST /api/jobs/{id}/stop`` | ``{"stopped": bool}`` (false: it had ended) |
| ``DELETE /api/jobs/{id}`` | ``{"deleted": true}``; 400 while the job runs |
| ``PUT /api/packages/{sha256}.zip`` | store the zip in the body in the package store: ``{"uri", "stored"}`` |

Listings and details are read from the jobs' etcd records (they outlive the dashboard); the
rest is asked of the head's `JobManager`. An unknown id answers 404; every error is a JSON
``{"error": ...}``. A head that runs no job manager (a local session's dashboard) answers 503.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from ..gcs import schema
from ..jobs.manager import DeleteJob, JobNotFoundError, JobRequestError, ReadJobLog, StopJob, SubmitJob
from ..jobs.records import TERMINAL, JobDetails, JobStatus, SubmitRequest

__all__ = ["add_job_routes"]

ASK_TIMEOUT = 30.0  # a stop waits for the job's grace period
TAIL_POLL = 0.2  # seconds between reads of a followed log that had nothing new
LOG_CHUNK = 1 << 20


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def add_job_routes(app: web.Application, etcd: Any, cluster: str, manager: Any) -> None:
    """Add the Jobs API to the dashboard `app`: records read from `etcd`, the rest asked of the
    `manager` (the head's JobManager ref; None: no job submission here)."""

    async def ask(message: Any) -> Any:
        if manager is None:
            raise _error(web.HTTPServiceUnavailable, "this dashboard takes no jobs: job submission needs a "
                                                     "cluster head (`actorcore start --head`)")
        try:
            return await manager.ask(message, timeout=ASK_TIMEOUT)
        except JobNotFoundError as error:
            raise _error(web.HTTPNotFound, str(error)) from None
        except JobRequestError as error:
            raise _error(web.HTTPBadRequest, str(error)) from None

    async def details(submission_id: str) -> dict:
        value = await etcd.get(schema.key(cluster, "jobs", submission_id))
        if not value:
            raise _error(web.HTTPNotFound, f"no job has the submission id {submission_id!r}")
        return JobDetails.from_dict(json.loads(value)).to_dict()

    async def submit(request: web.Request) -> web.Response:
        try:
            submission = SubmitRequest.from_json(await request.json())
        except ValueError as error:  # a body that is no JSON too
            raise _error(web.HTTPBadRequest, f"bad job submission: {error}") from None
        submission_id = await ask(SubmitJob(submission))
        return web.json_response({"submission_id": submission_id, "job_id": submission_id})

    async def list_jobs(_request: web.Request) -> web.Response:
        rows = []
        for _key, value in await etcd.get_prefix(schema.key(cluster, "jobs", "")):
            try:
                rows.append(JobDetails.from_dict(json.loads(value)).to_dict())
            except (ValueError, TypeError):
                continue
        rows.sort(key=lambda row: (row["start_time"] or 0, row["submission_id"]))
        return web.json_response(rows)

    async def get_job(request: web.Request) -> web.Response:
        return web.json_response(await details(request.match_info["id"]))

    async def logs(request: web.Request) -> web.Response:
        chunks, offset = [], 0
        while True:
            answer = await ask(ReadJobLog(request.match_info["id"], offset, LOG_CHUNK))
            if not answer["data"]:
                break
            chunks.append(answer["data"])
            offset = answer["offset"]
        return web.json_response({"logs": b"".join(chunks).decode(errors="replace")})

    async def tail(request: web.Request) -> web.StreamResponse:
        submission_id = request.match_info["id"]
        first = await ask(ReadJobLog(submission_id, 0, LOG_CHUNK))  # 404 before the upgrade
        socket = web.WebSocketResponse(heartbeat=30)
        await socket.prepare(request)
        closed = asyncio.get_running_loop().create_task(_until_closed(socket))
        try:
            answer = first
            while not closed.done():
                if answer["data"]:
                    await socket.send_str(answer["data"].decode(errors="replace"))
                elif JobStatus(answer["status"]) in TERMINAL:
                    break
                else:
                    await asyncio.wait([closed], timeout=TAIL_POLL)
                answer = await ask(ReadJobLog(submission_id, answer["offset"], LOG_CHUNK))
        finally:
            closed.cancel()
            await socket.close()
        return socket

    async def stop(request: web.Request) -> web.Response:
        return web.json_response({"stopped": bool(await ask(StopJob(request.match_info["id"])))})

    async def delete(request: web.Request) -> web.Response:
        return web.json_response({"deleted": bool(await ask(DeleteJob(request.match_info["id"])))})

    async def put_package(request: web.Request) -> web.Response:
        from ..runtime_env.package_store import PackageStore
        from ..runtime_env.packaging import URI_SCHEME, sha_of_uri

        uri = URI_SCHEME + request.match_info["name"]
        try:
            sha_of_uri(uri)
            stored = await PackageStore(etcd, cluster).put(uri, await request.read())
        except ValueError as error:
            raise _error(web.HTTPBadRequest, f"package {uri}: {error}") from None
        return web.json_response({"uri": uri, "stored": stored})

    app.router.add_put("/api/packages/{name}", put_package)
    for path in ("/api/jobs/", "/api/jobs"):
        app.router.add_post(path, submit)
        app.router.add_get(path, list_jobs)
    app.router.add_get("/api/jobs/{id}", get_job)
    app.router.add_get("/api/jobs/{id}/logs", logs)
    app.router.add_get("/api/jobs/{id}/logs/tail", tail)
    app.router.add_post("/api/jobs/{id}/stop", stop)
    app.router.add_delete("/api/jobs/{id}", delete)


async def _until_closed(socket: web.WebSocketResponse) -> None:
    """Returns once the client closes `socket` (it sends nothing else)."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
