"""`JobRunner`: the kernel actor that runs one submitted job's entrypoint (docs/architecture.md,
"Jobs").

It lives in the head node's process, a temporary child of the `JobManager`'s supervisor. While
the job is PENDING it gets ready in the background (its mailbox stays free: a stop is heard):
it holds the entrypoint's resources (``entrypoint_num_cpus`` ...) in the head's Scheduler
(`HoldResources`; a head that can never hold them fails the job at once, a busy one keeps it
PENDING until they free up) for as long as it lives, then has the head's WorkerPool set the
job's runtime env up (`PrepareRuntimeEnv`: packages extracted, a pip environment made, as for
the head's workers; a failure fails the job, ``runtime_env_setup_failed``). Then it runs the
entrypoint with ``/bin/sh -c`` in a process group of its own (a new session), in the env
(`entrypoint_environment`), stdout and stderr both into the job's log file, and records the
job RUNNING with the pid. A driver the entrypoint starts tells it its job id (`driver`).
When the entrypoint exits, the runner records SUCCEEDED (exit code 0) or FAILED (the exit
code and the tail of the log in ``message``) and stops. Stopped before that (the job is
stopped, or the head stops), it sends SIGTERM to the process group, SIGKILL after
`STOP_GRACE` seconds, and records STOPPED. Either way it ends by killing what is left of the
group (no process of a job outlives its runner) and giving back the resources it held.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor import ProcessChild

from .._logging import get_logger
from ..env import RUNTIME_ENV_PATHS_ENV
from ..exceptions import RuntimeEnvSetupError
from ..kernel import Actor, ActorRef
from ..protocol import HoldResources, PrepareRuntimeEnv, ReleaseHeldResources
from ..runtime_env.spec import canonical
from .driver import JOB_RUNNER_ENV, DriverConnected
from .records import JobStatus

__all__ = ["LOG_TAIL_BYTES", "STOP_GRACE", "JobRunner", "entrypoint_environment", "entrypoint_shape", "log_path",
           "log_tail", "now_ms"]

log = get_logger(__name__)

STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when a job is stopped
LOG_TAIL_BYTES = 2000  # how much of the end of its log a failed job's message shows
WRITE_ATTEMPTS = 5  # a status etcd does not take is tried again, a second apart


def now_ms() -> int:
    return int(time.time() * 1000)


def log_tail(path: str | os.PathLike, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of the log at `path` (from a line start), as text; "" if unreadable."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - limit))
            data = file.read()
    except OSError:
        return ""
    if size > limit and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return data.decode(errors="replace").rstrip("\n")


def entrypoint_shape(record: dict) -> dict[str, float]:
    """The resources job `record` asked for its entrypoint, as the Scheduler names them."""
    shape = {"CPU": record.get("entrypoint_num_cpus"), "GPU": record.get("entrypoint_num_gpus"),
             "memory": record.get("entrypoint_memory"), **(record.get("entrypoint_resources") or {})}
    return {name: float(quantity) for name, quantity in shape.items() if quantity}


def entrypoint_environment(base: dict[str, str], setup: Any, gpu_ids: list[str]) -> dict[str, str]:
    """The entrypoint's environment: `base` (the manager's) with its runtime env's `setup` (a
    `WorkerSetup`, or None): its ``working_dir`` and ``py_modules`` ahead on PYTHONPATH, its pip
    environment's bin first on PATH and VIRTUAL_ENV; and the GPUs held for it, if any."""
    env = dict(base)
    if setup is not None:
        paths = setup.env.get(RUNTIME_ENV_PATHS_ENV)
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, (paths, env.get("PYTHONPATH"))))
        if setup.python:
            venv = Path(setup.python).parent.parent
            env["VIRTUAL_ENV"] = str(venv)
            env["PATH"] = os.pathsep.join(filter(None, (str(venv / "bin"), env.get("PATH", os.defpath))))
            env.pop("PYTHONHOME", None)
    if gpu_ids:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    return env


class _CannotStart(Exception):
    """The job cannot start: `message` and `error_type` say why, in its record."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.message, self.error_type = message, error_type


@dataclass(frozen=True, slots=True)
class _Exited:
    """The entrypoint's process ended (its return code, negative: killed by that signal)."""

    returncode: int


class JobRunner(Actor):
    """Runs the job whose etcd record is `record` (a dict, stored at `key` through `etcd`), with
    the environment `environment`, in the folder `cwd` (unless its runtime env has a
    working_dir); its resources are held in the head's `scheduler`, its runtime env set up by
    the head's worker `pool` (either None: a job that needs it fails)."""

    def __init__(self, record: dict, key: str, etcd: Any, environment: dict[str, str], cwd: str | None,
                 stop_grace: float = STOP_GRACE, *, scheduler: ActorRef | None = None,
                 pool: ActorRef | None = None) -> None:
        self.record = dict(record)
        self.key, self.etcd = key, etcd
        self.environment, self.cwd = environment, cwd
        self.stop_grace = stop_grace
        self.scheduler, self.pool = scheduler, pool
        self.holding = False  # resources asked of the scheduler (given back when the runner ends)
        self.starting: asyncio.Task | None = None
        self.spawning = False  # the entrypoint's process is being started: not to be cancelled
        self.process: ProcessChild | None = None
        self.waiter: asyncio.Task | None = None
        self.finished = False

    @property
    def submission_id(self) -> str:
        return self.record["submission_id"]

    async def pre_start(self) -> None:
        self.starting = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        """Hold the resources, set the runtime env up, start the entrypoint (see the module's docstring)."""
        try:
            gpu_ids = await self._hold_resources()
            setup = await self._set_up_runtime_env()
        except Exception as error:  # noqa: BLE001 - any failure is the job's (a scheduler or pool gone, say)
            cannot = error if isinstance(error, _CannotStart) else _CannotStart(
                f"the job could not be started: {type(error).__name__}: {error}", "job_manager_error")
            await self._finish(JobStatus.FAILED, cannot.message, error_type=cannot.error_type)
            self.self_ref.tell(_Exited(-1))  # nothing runs: the runner stops at once
            return
        environment = entrypoint_environment(self.environment, setup, gpu_ids)
        environment[JOB_RUNNER_ENV] = self.self_ref.to_uri()
        cwd = setup.cwd if setup is not None and "working_dir" in self.record["runtime_env"] else self.cwd
        self.spawning = True
        log_file = os.open(self.record["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = await ProcessChild.start(
                ["/bin/sh", "-c", self.record["entrypoint"]], env=environment, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as error:
            await self._finish(JobStatus.FAILED, f"the entrypoint could not be started: {error}",
                               error_type="entrypoint_start_failed")
            self.self_ref.tell(_Exited(-1))
            return
        finally:
            os.close(log_file)
            self.spawning = False
        log.info("job started", submission_id=self.submission_id, pid=self.process.pid)
        await self._write(status=JobStatus.RUNNING.value, pid=self.process.pid,
                          message="the job's entrypoint is running")
        self.waiter = asyncio.get_running_loop().create_task(self._wait())

    async def _hold_resources(self) -> list[str]:
        """Hold the entrypoint's resources in the head's Scheduler, waiting while they are
        busy; the ids of the GPUs held."""
        shape = entrypoint_shape(self.record)
        if not shape:
            return []
        if self.scheduler is None:
            raise _CannotStart("this head has no scheduler to hold the entrypoint's resources in",
                               "job_manager_error")
        self.holding = True
        held = self.scheduler.ask(HoldResources(self.key, tuple(shape.items()), self.self_ref), timeout=None)
        done, _ = await asyncio.wait([held], timeout=0.5)
        if not done:
            wanted = ", ".join(f"{name}: {quantity:g}" for name, quantity in shape.items())
            await self._write(message=f"waiting for the head to have the entrypoint's resources free ({wanted})")
        try:
            return list(await held)
        except ValueError as error:
            raise _CannotStart(f"the entrypoint's resources cannot be had on the head node: {error}",
                               "entrypoint_resources_infeasible") from None

    async def _set_up_runtime_env(self) -> Any:
        """The job's runtime env set up on the head (a `WorkerSetup`), or None if it needs none."""
        runtime_env = self.record["runtime_env"]
        if not any(key in runtime_env for key in ("working_dir", "py_modules", "pip")):
            return None
        if self.pool is None:
            raise _CannotStart("this head has no worker pool to set the job's runtime env up with",
                               "runtime_env_setup_failed")
        await self._write(message="setting up the job's runtime env on the head")
        try:
            return await self.pool.ask(PrepareRuntimeEnv(canonical(runtime_env)), timeout=None)
        except Exception as error:  # noqa: BLE001 - the job fails with it, whatever it was
            why = error.error_message if isinstance(error, RuntimeEnvSetupError) else f"{type(error).__name__}: {error}"
            raise _CannotStart(f"the job's runtime env could not be set up: {why}",
                               "runtime_env_setup_failed") from None

    async def _wait(self) -> None:
        returncode = await self.process.process.wait()
        self.self_ref.tell(_Exited(returncode))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, _Exited):
            if not self.finished:
                await self._ended_by_itself(message.returncode)
            self.context.stop()
        elif isinstance(message, DriverConnected) and self.record.get("job_id") is None:  # the first driver's
            await self._write(job_id=message.job_id, driver_node_id=message.node_id, driver_info=message.driver_info)
        return None

    async def post_stop(self) -> None:
        if self.starting is not None and not self.starting.done():
            if not self.spawning:  # waiting for resources or the runtime env: no process yet
                self.starting.cancel()
            await asyncio.wait([self.starting])
        if self.holding:
            self.scheduler.tell(ReleaseHeldResources(self.key))
        if self.process is None and not self.finished:
            await self._finish(JobStatus.STOPPED, "the job was stopped before its entrypoint started")
        process = self.process
        if process is not None and process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.process.wait(), self.stop_grace)
            except asyncio.TimeoutError:
                self._signal_group(signal.SIGKILL)
                await process.process.wait()
            if not self.finished:
                await self._finish(JobStatus.STOPPED, "the job was stopped", driver_exit_code=process.returncode)
        elif process is not None and not self.finished:  # it ended as it was being stopped
            await self._ended_by_itself(process.returncode)
        self._signal_group(signal.SIGKILL)  # what the entrypoint left behind in its group
        if self.waiter is not None:
            self.waiter.cancel()

    async def _ended_by_itself(self, returncode: int) -> None:
        if returncode == 0:
            await self._finish(JobStatus.SUCCEEDED, "the job's entrypoint exited with code 0", driver_exit_code=0)
            return
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        tail = log_tail(self.record["log_path"])
        message = f"the job's entrypoint {how}" + (f"; the end of its log:\n{tail}" if tail else "")
        await self._finish(JobStatus.FAILED, message, error_type="entrypoint_failed", driver_exit_code=returncode)

    def _signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the group is empty

    async def _finish(self, status: JobStatus, message: str, **fields: Any) -> None:
        self.finished = True
        log.info("job ended", submission_id=self.submission_id, status=status.value, **fields)
        await self._write(status=status.value, message=message, end_time=now_ms(), **fields)

    async def _write(self, **changes: Any) -> None:
        """Record `changes` in the job's etcd record (tried again while etcd does not answer)."""
        self.record.update(changes)
        value = json.dumps(self.record).encode()
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self.etcd.put(self.key, value)
                return
            except (OSError, TimeoutError) as error:
                if attempt == WRITE_ATTEMPTS - 1:
                    log.error("job status not recorded: etcd did not answer", submission_id=self.submission_id,
                              status=self.record.get("status"), error=str(error))
                    return
                await asyncio.sleep(1.0)


def log_path(folder: str | os.PathLike, submission_id: str) -> Path:
    """Where the log of job `submission_id` is kept in the head's log `folder`."""
    return Path(folder) / f"job-driver-{submission_id}.log"

