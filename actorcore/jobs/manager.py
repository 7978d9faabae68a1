"""`JobManager`: the head node's actor that takes job submissions (docs/architecture.md, "Jobs").

It is a child of the head node's root supervisor (started before the dashboard, which asks it;
a restart of the dashboard leaves the jobs running). It keeps a `Supervisor` of its own with
one temporary `JobRunner` child per running job, and the jobs' records in etcd at
``jobs/<submission_id>`` (`records`), which is where the dashboard lists them from.

Messages (asked by the dashboard's job routes, `dashboard.jobs`):

| message | answer |
|---|---|
| `SubmitJob` | the submission id; `JobRequestError` for a duplicate id or what cannot run |
| `StopJob` | True if the job was PENDING or RUNNING and is now stopped; False if it had ended |
| `DeleteJob` | True once its record and log are gone; `JobRequestError` while it runs |
| `ReadJobLog` | ``{"data", "offset", "status"}``: its log from ``offset`` (at most ``max_bytes``) |

`JobNotFoundError` answers any of them for an unknown id. When it starts, a record left
PENDING or RUNNING by a head process that ended without stopping its jobs (killed) is marked
FAILED, and the process group it names is killed if it still runs that job.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from typing import Any

from supervisor import ChildNotFoundError, ChildStartError, Supervisor

from .._logging import get_logger
from ..env import ETCD_PASSWORD_ENV, HOST_ID_ENV, SECRETS_FD_ENV, TOKEN_ENV, WORKER_ID_ENV
from ..gcs import schema
from ..gcs.lazy_etcd import LazyEtcd
from ..kernel import Actor
from ..kernel.supervision import actor_spec
from .records import TERMINAL, JobDetails, JobStatus, SubmitRequest, new_submission_id
from .runner import STOP_GRACE, JobRunner, log_path, now_ms

__all__ = [
    "JOB_ID_ENV",
    "RUNTIME_ENV_ENV",
    "STOP_GRACE",
    "DeleteJob",
    "JobManager",
    "JobNotFoundError",
    "JobRequestError",
    "ReadJobLog",
    "StopJob",
    "SubmitJob",
]

log = get_logger(__name__)

#: the JSON of the job's runtime_env, for init() in the entrypoint to apply
RUNTIME_ENV_ENV = "ACTORCORE_RUNTIME_ENV"
#: the job's submission id, in its entrypoint's environment
JOB_ID_ENV = "ACTORCORE_JOB_SUBMISSION_ID"
#: what the head's own environment holds that is not the job's
_NOT_INHERITED = (TOKEN_ENV, ETCD_PASSWORD_ENV, SECRETS_FD_ENV, HOST_ID_ENV, WORKER_ID_ENV)


class JobNotFoundError(LookupError):
    """No job has the submission id asked for."""


class JobRequestError(ValueError):
    """A request the job manager refuses (its message says why)."""


@dataclass(frozen=True, slots=True)
class SubmitJob:
    request: SubmitRequest


@dataclass(frozen=True, slots=True)
class StopJob:
    submission_id: str


@dataclass(frozen=True, slots=True)
class DeleteJob:
    submission_id: str


@dataclass(frozen=True, slots=True)
class ReadJobLog:
    submission_id: str
    offset: int = 0
    max_bytes: int = 1 << 20


class JobManager(Actor):
    """Runs the jobs submitted to the cluster whose etcd is at `etcd` (endpoints), named
    `cluster`; entrypoints connect to `address`, and their logs go to `log_folder`. The head's
    `scheduler` holds the entrypoints' resources, its worker `pool` sets their runtime envs up."""

    def __init__(self, etcd: str, token: str, *, cluster: str, address: str, log_folder: str,
                 cwd: str | None = None, etcd_auth: dict | None = None, stop_grace: float = STOP_GRACE,
                 scheduler: Any = None, pool: Any = None) -> None:
        self.etcd_endpoints, self.token, self.etcd_auth = etcd, token, etcd_auth
        self.cluster, self.address = cluster, address
        self.log_folder, self.cwd = log_folder, cwd
        self.stop_grace = stop_grace
        self.scheduler, self.pool = scheduler, pool
        self.etcd: LazyEtcd | None = None
        self.runners: Supervisor | None = None
        self.pending: set[asyncio.Task] = set()

    async def pre_start(self) -> None:
        os.makedirs(self.log_folder, mode=0o700, exist_ok=True)
        self.etcd = LazyEtcd(self.etcd_endpoints, self.token, self.etcd_auth)
        self.runners = await Supervisor([], strategy="one_for_one", max_restarts=-1, name="jobs").start()
        self._in_background(self._fail_leftovers())

    async def post_stop(self) -> None:
        for task in list(self.pending):
            task.cancel()
        if self.runners is not None:
            await self.runners.shutdown()  # each runner stops its job (STOPPED)
            self.runners = None
        if self.etcd is not None:
            await self.etcd.close()
            self.etcd = None

    def _in_background(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return task

    def _key(self, submission_id: str) -> str:
        return schema.key(self.cluster, "jobs", submission_id)

    async def _record(self, submission_id: str) -> dict:
        value = await self.etcd.get(self._key(submission_id))
        if not value:
            raise JobNotFoundError(f"no job has the submission id {submission_id!r}")
        return json.loads(value)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, SubmitJob):
            return await self._submit(message.request)
        if isinstance(message, StopJob):
            record = await self._record(message.submission_id)
            if JobStatus(record["status"]) in TERMINAL:
                return False
            reply = self.context.defer_reply()  # stopping takes up to the grace period: others go on
            self._in_background(self._stop(record, reply))
            return None
        if isinstance(message, DeleteJob):
            return await self._delete(message.submission_id)
        if isinstance(message, ReadJobLog):
            record = await self._record(message.submission_id)
            data, offset = _read(record.get("log_path"), message.offset, message.max_bytes)
            return {"data": data, "offset": offset, "status": record["status"]}
        return None

    async def _submit(self, request: SubmitRequest) -> str:
        runtime_env = dict(request.runtime_env)
        submission_id = request.submission_id or new_submission_id()
        details = JobDetails(
            submission_id=submission_id, entrypoint=request.entrypoint, start_time=now_ms(),
            metadata=dict(request.metadata), runtime_env=runtime_env,
            entrypoint_num_cpus=request.entrypoint_num_cpus, entrypoint_num_gpus=request.entrypoint_num_gpus,
            entrypoint_memory=request.entrypoint_memory, entrypoint_resources=request.entrypoint_resources,
            message="the job is waiting to start")
        record = {**details.to_dict(), "log_path": str(log_path(self.log_folder, submission_id))}
        if not await self.etcd.create_if_absent(self._key(submission_id), json.dumps(record).encode()):
            raise JobRequestError(f"a job with submission_id {submission_id!r} already exists; "
                                  "give another id (or none, for a new one)")
        try:
            await self.runners.start_child(actor_spec(
                self.context.system, _runner_name(submission_id), JobRunner, record, self._key(submission_id),
                self.etcd, self._environment(submission_id, runtime_env), self.cwd, self.stop_grace,
                scheduler=self.scheduler, pool=self.pool, restart="temporary", shutdown=self.stop_grace + 5))
        except ChildStartError as error:
            record.update(status=JobStatus.FAILED.value, message=f"the job could not be started: {error}",
                          error_type="job_manager_error", end_time=now_ms())
            await self.etcd.put(self._key(submission_id), json.dumps(record).encode())
        log.info("job submitted", submission_id=submission_id)
        return submission_id

    def _environment(self, submission_id: str, runtime_env: dict) -> dict[str, str]:
        """The entrypoint's environment: the head's without its secrets, init()'s cluster, the
        job's runtime_env (as JSON, and its env_vars set), unbuffered Python output."""
        from ..cluster_files import home
        from ..env import ADDRESS_ENV, HOME_ENV

        env = {name: value for name, value in os.environ.items() if name not in _NOT_INHERITED}
        env.update({ADDRESS_ENV: self.address, HOME_ENV: str(home()), JOB_ID_ENV: submission_id,
                    RUNTIME_ENV_ENV: json.dumps(runtime_env), "PYTHONUNBUFFERED": "1"})
        env.update(runtime_env.get("env_vars") or {})
        return env

    async def _stop(self, record: dict, reply) -> None:
        submission_id = record["submission_id"]
        try:
            await self.runners.terminate_child(_runner_name(submission_id))
        except ChildNotFoundError:  # no runner: it ended meanwhile, or never ran in this process
            record = await self._record(submission_id)
            if JobStatus(record["status"]) in TERMINAL:
                reply.send(False)
                return
            record.update(status=JobStatus.STOPPED.value, message="the job was stopped", end_time=now_ms())
            await self.etcd.put(self._key(submission_id), json.dumps(record).encode())
        except Exception as error:  # noqa: BLE001 - the caller hears of it
            reply.fail(error)
            return
        reply.send(True)

    async def _delete(self, submission_id: str) -> bool:
        record = await self._record(submission_id)
        if JobStatus(record["status"]) not in TERMINAL:
            raise JobRequestError(f"job {submission_id} is {record['status']}: stop it before deleting it")
        await self.etcd.delete(self._key(submission_id))
        if record.get("log_path"):
            try:
                os.unlink(record["log_path"])
            except FileNotFoundError:
                pass
        return True

    async def _fail_leftovers(self) -> None:
        """Mark FAILED the jobs a former head process left unfinished (see the module's docstring)."""
        for attempt in range(30):
            try:
                items = await self.etcd.get_prefix(self._key(""))
                break
            except (OSError, TimeoutError):
                await asyncio.sleep(min(1.0 * (attempt + 1), 5.0))
        else:
            log.error("jobs: etcd did not answer; unfinished jobs of a former head are not marked failed")
            return
        running = {info.id for info in self.runners.which_children()} if self.runners else set()
        for _key, value in items:
            record = json.loads(value)
            submission_id = record.get("submission_id")
            if JobStatus(record["status"]) in TERMINAL or _runner_name(submission_id) in running:
                continue
            if record.get("pid"):
                _kill_leftover_group(int(record["pid"]), submission_id)
            record.update(status=JobStatus.FAILED.value, error_type="head_stopped", end_time=now_ms(),
                          message="the head node that ran the job stopped before the job ended")
            await self.etcd.put(self._key(submission_id), json.dumps(record).encode())
            log.warning("job left unfinished by a former head marked failed", submission_id=submission_id)


def _runner_name(submission_id: str) -> str:
    return f"job:{submission_id}"


def _read(path: str | None, offset: int, max_bytes: int) -> tuple[bytes, int]:
    """At most `max_bytes` of the file at `path` from `offset`, and the offset after them."""
    if not path:
        return b"", offset
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read(max_bytes)
    except FileNotFoundError:
        return b"", offset
    return data, offset + len(data)


def _kill_leftover_group(pid: int, submission_id: str) -> None:
    """Kill the process group `pid` leads if that process is still job `submission_id`'s entrypoint."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read().split(b"\0")
    except OSError:
        return
    if f"{JOB_ID_ENV}={submission_id}".encode() in environ:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
