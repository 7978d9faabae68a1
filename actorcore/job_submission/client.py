"""`JobSubmissionClient`: submit jobs to a cluster and follow them over the head's Jobs API
(docs/architecture.md, "Jobs"), with Ray's method names and signatures.

The client speaks HTTP (aiohttp) to the head's dashboard, sending the cluster token as
``Authorization: Bearer``. Its methods are synchronous (each runs its request on an event loop
of its own, in a thread of its own when the caller's thread runs one) but for `tail_job_logs`,
an async iterator. A request the head refuses raises `JobSubmissionError` with the head's
message and the HTTP status.

`address` is the dashboard's URL (``http://HOST:PORT``); without one, ``$ACTORCORE_ADDRESS`` if
it is such a URL, else the dashboard of the cluster of this machine (or of the one whose etcd
``$ACTORCORE_ADDRESS`` names), as its head recorded it in etcd.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..jobs.records import JobDetails, JobStatus
from ..runtime_env.packaging import URI_SCHEME, pack_local_paths
from ..runtime_env.spec import validate as validate_runtime_env

__all__ = ["JobSubmissionClient", "JobSubmissionError", "resolve_dashboard_url"]

REQUEST_TIMEOUT = 60.0


class JobSubmissionError(RuntimeError):
    """The head refused a request, or could not be reached (its message says which)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def resolve_dashboard_url(address: str | None) -> str:
    """The dashboard URL `address` names (see the module's docstring); ConnectionError if none."""
    from ..env import ADDRESS_ENV

    address = address or os.environ.get(ADDRESS_ENV) or None
    if address and "://" in address:
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"the Jobs API is served over HTTP: give http://HOST:PORT, got {address!r}")
        return address.rstrip("/")
    return _head_dashboard(address)


def _head_dashboard(etcd_address: str | None) -> str:
    """The dashboard URL the head of the cluster whose etcd is at `etcd_address` (None: this
    machine's cluster) recorded in its node record."""
    from .. import cluster_files as files
    from ..gcs.schema import key
    from ..gcs.sealed import SealedEtcd

    address = etcd_address or (files.read_cluster_info() or {}).get("address")
    if not address:
        raise ConnectionError("no cluster to submit to: pass the head's dashboard address (http://HOST:8265), set "
                              "ACTORCORE_ADDRESS, or start a cluster here with `actorcore start --head`")
    cluster, auth = files.cluster_at(address)

    async def read() -> list[dict]:
        client = await SealedEtcd.connect(address.split(","), secret=files.read_token(), timeout=5,
                                          **({"auth": auth} if auth else {}))
        try:
            return [json.loads(value) for _, value in await client.get_prefix(key(cluster, "nodes", ""))]
        finally:
            await client.close()

    urls = [node["dashboard_url"] for node in _run(read()) if node.get("head") and node.get("dashboard_url")]
    if not urls:
        raise ConnectionError(f"the head of the cluster at {address} serves no dashboard (started with "
                              "--no-include-dashboard?): it takes no jobs")
    return urls[0]


def _run(coroutine):
    """Run `coroutine` to its end from synchronous code, even in a thread that runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class JobSubmissionClient:
    """A client of the Jobs API of the cluster at `address` (see the module's docstring).
    `token`: the cluster token (default: this machine's, `cluster_files.read_token`);
    `headers`: more HTTP headers to send."""

    def __init__(self, address: str | None = None, *, token: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        from ..cluster_files import read_token

        self.address = resolve_dashboard_url(address)
        self._headers = {**(headers or {}), "Authorization": f"Bearer {token or read_token()}"}

    def __repr__(self) -> str:
        return f"JobSubmissionClient({self.address!r})"

    # -- requests --------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None) -> Any:
        """The JSON answer to `method` `path` with the JSON `body` (or the raw `data`)."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        payload = {"json": body} if data is None else {"data": data}
        try:
            async with (aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session,
                        session.request(method, self.address + path, **payload) as response):
                text = await response.text()
                if response.status != 200:
                    raise JobSubmissionError(_error_text(response.status, text), response.status)
                return json.loads(text)
        except aiohttp.ClientError as error:
            raise JobSubmissionError(f"cannot reach the Jobs API at {self.address}: {error}") from None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return _run(self._request(method, path, body))

    # -- Ray's methods ---------------------------------------------------------------------------

    def submit_job(self, *, entrypoint: str, job_id: str | None = None, runtime_env: dict | None = None,
                   metadata: dict[str, str] | None = None, submission_id: str | None = None,
                   entrypoint_num_cpus: float | None = None, entrypoint_num_gpus: float | None = None,
                   entrypoint_memory: int | None = None,
                   entrypoint_resources: dict[str, float] | None = None) -> str:
        """Submit `entrypoint` (a shell command run on the head, in `runtime_env`, with the
        ``entrypoint_*`` resources held for it while it runs); its submission id."""
        runtime_env, packages = pack_local_paths(validate_runtime_env(runtime_env, "runtime_env"))
        for uri, data in packages.items():
            self._upload(uri, data)
        body = {"entrypoint": entrypoint, "submission_id": submission_id or job_id, "runtime_env": runtime_env,
                "metadata": metadata or {}, "entrypoint_num_cpus": entrypoint_num_cpus,
                "entrypoint_num_gpus": entrypoint_num_gpus, "entrypoint_memory": entrypoint_memory,
                "entrypoint_resources": entrypoint_resources}
        return self._call("POST", "/api/jobs/", {k: v for k, v in body.items() if v is not None})["submission_id"]

    def upload_package(self, path: str, excludes=(), what: str = "working_dir") -> str:
        """Pack the local directory (or .zip) at `path` and upload it to the cluster's package
        store; its URI (``pkg://<sha256>.zip``). ValueError names what is wrong with `path`.
        `what`: the runtime env key it is for (a ``py_modules`` directory keeps its name)."""
        packed, packages = pack_local_paths({what: [path] if what == "py_modules" else path,
                                             "excludes": list(excludes)})
        for uri, data in packages.items():
            self._upload(uri, data)
        return packed[what][0] if what == "py_modules" else packed[what]

    def _upload(self, uri: str, data: bytes) -> None:
        _run(self._request("PUT", f"/api/packages/{uri.removeprefix(URI_SCHEME)}", data=data))

    def stop_job(self, job_id: str) -> bool:
        """Stop the job (SIGTERM to its processes, SIGKILL after a grace period); False if it had ended."""
        return self._call("POST", f"/api/jobs/{_segment(job_id)}/stop")["stopped"]

    def delete_job(self, job_id: str) -> bool:
        """Forget an ended job: its record and its log."""
        return self._call("DELETE", f"/api/jobs/{_segment(job_id)}")["deleted"]

    def get_job_info(self, job_id: str) -> JobDetails:
        """The job's details (`JobDetails`)."""
        return JobDetails.from_dict(self._call("GET", f"/api/jobs/{_segment(job_id)}"))

    def list_jobs(self) -> list[JobDetails]:
        """Every job of the cluster, oldest first."""
        return [JobDetails.from_dict(row) for row in self._call("GET", "/api/jobs/")]

    def get_job_status(self, job_id: str) -> JobStatus:
        """The job's status."""
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        """The job's output so far (its stdout and stderr)."""
        return self._call("GET", f"/api/jobs/{_segment(job_id)}/logs")["logs"]

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's output as it is written, in chunks, until the job has ended."""
        url = self.address + f"/api/jobs/{_segment(job_id)}/logs/tail"
        try:
            async with (aiohttp.ClientSession(headers=self._headers) as session,
                        session.ws_connect(url) as socket):
                async for message in socket:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        yield message.data
                    elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
        except aiohttp.WSServerHandshakeError as error:
            raise JobSubmissionError(f"cannot follow the logs of job {job_id}: HTTP {error.status} {error.message}",
                                     error.status) from None
        except aiohttp.ClientError as error:
            raise JobSubmissionError(f"cannot reach the Jobs API at {self.address}: {error}") from None


def _segment(job_id: str) -> str:
    if not isinstance(job_id, str) or not job_id or "/" in job_id:
        raise ValueError(f"a job id is a non-empty string without '/', got {job_id!r}")
    return job_id


def _error_text(status: int, text: str) -> str:
    try:
        message = json.loads(text).get("error") or text
    except (ValueError, AttributeError):
        message = text
    return f"the Jobs API answered {status}: {message}"
