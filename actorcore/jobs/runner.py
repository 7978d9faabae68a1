"""`JobRunner`: the kernel actor that runs one submitted job's entrypoint (docs/architecture.md,
"Jobs").

It lives in the head node's process, a temporary child of the `JobManager`'s supervisor. Its
start runs the entrypoint with ``/bin/sh -c`` in a process group of its own (a new session),
stdout and stderr both into the job's log file, and records the job RUNNING with the pid.
When the entrypoint exits, the runner records SUCCEEDED (exit code 0) or FAILED (the exit
code and the tail of the log in ``message``) and stops. Stopped before that (the job is
stopped, or the head stops), it sends SIGTERM to the process group, SIGKILL after
`STOP_GRACE` seconds, and records STOPPED. Either way it ends by killing what is left of the
group: no process of a job outlives its runner.
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
from ..kernel import Actor
from .records import JobStatus

__all__ = ["LOG_TAIL_BYTES", "STOP_GRACE", "JobRunner", "log_path", "log_tail", "now_ms"]

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


@dataclass(frozen=True, slots=True)
class _Exited:
    """The entrypoint's process ended (its return code, negative: killed by that signal)."""

    returncode: int


class JobRunner(Actor):
    """Runs the job whose etcd record is `record` (a dict, stored at `key` through `etcd`), with
    the environment `environment`, in the folder `cwd`."""

    def __init__(self, record: dict, key: str, etcd: Any, environment: dict[str, str], cwd: str | None,
                 stop_grace: float = STOP_GRACE) -> None:
        self.record = dict(record)
        self.key, self.etcd = key, etcd
        self.environment, self.cwd = environment, cwd
        self.stop_grace = stop_grace
        self.process: ProcessChild | None = None
        self.waiter: asyncio.Task | None = None
        self.finished = False

    @property
    def submission_id(self) -> str:
        return self.record["submission_id"]

    async def pre_start(self) -> None:
        log_file = os.open(self.record["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = await ProcessChild.start(
                ["/bin/sh", "-c", self.record["entrypoint"]], env=self.environment, cwd=self.cwd,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as error:
            await self._finish(JobStatus.FAILED, f"the entrypoint could not be started: {error}",
                               error_type="entrypoint_start_failed")
            self.self_ref.tell(_Exited(-1))  # nothing runs: the runner stops at once
            return
        finally:
            os.close(log_file)
        log.info("job started", submission_id=self.submission_id, pid=self.process.pid)
        await self._write(status=JobStatus.RUNNING.value, pid=self.process.pid)
        self.waiter = asyncio.get_running_loop().create_task(self._wait())

    async def _wait(self) -> None:
        returncode = await self.process.process.wait()
        self.self_ref.tell(_Exited(returncode))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, _Exited):
            if not self.finished:
                await self._ended_by_itself(message.returncode)
            self.context.stop()
        return None

    async def post_stop(self) -> None:
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

