"""The WorkerPool actor: a simple_one_for_one supervisor of worker processes.

It starts workers on the Scheduler's demand (`StartWorkers`), forwards each worker's
stdout and stderr, line by line with the worker's pid, to the drivers' log sinks (as Ray
prints `(pid=...)` lines; in a cluster every driver subscribes with `SubscribeLogs`, and
without any the lines go to the node's own stderr), and tells the Scheduler when a worker process ends. Workers are
`temporary` children for now: the Scheduler asks for new ones as it needs them. Each worker
gets the cluster token on a pipe of its own (`actorcore.process_secrets`), never in its
environment, which every process a task starts would inherit. Each worker also gets an id
(``ACTORCORE_WORKER_ID``, its `get_worker_id()`), and, given a `WorkerLogFiles`, its output
is also written to its files in the node's log folder (`node.log_files`). A worker asked
for a runtime env (`StartWorkers.runtime_env`) starts as its `RuntimeEnvSetup` says (its
packages fetched and extracted first, in the background); if that fails, the Scheduler is told
(`RuntimeEnvFailed`) and fails the leases waiting for it. Asked `PrepareRuntimeEnv` (the
head's job manager, for an entrypoint), it answers the same `WorkerSetup` its workers of that
env get, once made: the entrypoint shares the node's extracted packages and pip environments. Every
``ACTORCORE_PACKAGE_GC_INTERVAL_S`` it removes the node's extracted packages the cluster no
longer holds (the head collected them) unless one of its workers runs or is being started
with them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable

from supervisor import ChildSpec, ProcessChild, StartInfo, Supervisor

from .._logging import get_logger
from ..env import ETCD_PASSWORD_ENV, RUNTIME_ENV_ENV, RUNTIME_ENV_PATHS_ENV, TOKEN_ENV, WORKER_ID_ENV
from ..exceptions import RuntimeEnvSetupError
from ..kernel import Actor, ActorRef, Terminated
from ..process_secrets import hand_over
from ..protocol import (
    EndIdleWorkers,
    KillWorker,
    ListPackages,
    ListWorkers,
    LogLines,
    PrepareRuntimeEnv,
    RuntimeEnvFailed,
    StartWorkers,
    SubscribeLogs,
    WorkerDied,
)
from ..runtime_env.packaging import package_uris, sha_of_uri
from .log_files import WorkerLogFiles
from .package_collector import gc_settings
from .runtime_env_setup import RuntimeEnvSetup, WorkerSetup

__all__ = ["WorkerPool", "worker_environment"]

log = get_logger(__name__)


class WorkerPool(Actor):
    """Starts, watches and kills the node's worker processes (see the module's docstring)."""

    def __init__(self, scheduler: ActorRef, worker_argv: list[str] | Callable[[StartInfo], list[str]],
                 env: dict, cwd: str, log_sink: ActorRef | None, token: str | None = None,
                 tls: dict | None = None, log_files: WorkerLogFiles | None = None,
                 gcs: ActorRef | None = None, task_history: ActorRef | None = None) -> None:
        self.scheduler = scheduler
        self.task_history = task_history  # told of each worker's end, to close what it was running
        self.worker_argv = worker_argv
        self.env = env
        self.cwd = cwd
        self.token = token
        self.tls = tls  # the cluster's TLS identity (`TlsIdentity.to_dict()`), handed over with the token
        self.log_sinks: set[ActorRef] = {log_sink} if log_sink is not None else set()
        self.supervisor: Supervisor | None = None
        self.children: dict[int, object] = {}
        self.pid_of: dict[str, int] = {}  # the supervisor's child id -> pid
        self.readers: set[asyncio.Task] = set()
        self.log_files = log_files
        self.worker_ids: dict[int, str] = {}  # pid -> the worker's id
        self.open_streams: dict[int, int] = {}  # pid -> its streams not yet at their end (with log files)
        self.runtime_envs: dict[int, str] = {}  # pid -> the runtime env it was started for, if any
        self.gcs = gcs
        self.setups = RuntimeEnvSetup(gcs, env, cwd) if gcs is not None else None
        self.setting_up: dict[asyncio.Task, str] = {}  # a start of workers for a runtime env -> the env
        self.prune_interval = gc_settings()[1]
        self.pruning: asyncio.Task | None = None

    async def pre_start(self) -> None:
        spec = ChildSpec(id="worker", start=self._start_worker, restart="temporary", shutdown=2.0,
                         type="worker")
        self.supervisor = Supervisor([spec], strategy="simple_one_for_one", max_restarts=-1,
                                     name="worker-pool", on_event=self._on_event)
        await self.supervisor.start()
        if self.setups is not None:
            self.pruning = asyncio.get_running_loop().create_task(self._prune_every_interval())

    async def post_stop(self) -> None:
        if self.pruning is not None:
            self.pruning.cancel()
        for task in list(self.setting_up):
            task.cancel()
        if self.supervisor is not None:
            await self.supervisor.shutdown(timeout=5.0)
        if self.setups is not None:
            self.setups.close()
        for reader in list(self.readers):
            try:
                await asyncio.wait_for(reader, 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        if self.log_files is not None:
            self.log_files.close_all()

    async def receive(self, message):
        if isinstance(message, StartWorkers):
            if not message.runtime_env:
                for _ in range(message.count):
                    await self.supervisor.start_child(())
            else:
                task = asyncio.get_running_loop().create_task(self._start_for(message.runtime_env, message.count))
                self.setting_up[task] = message.runtime_env
                task.add_done_callback(lambda done: self.setting_up.pop(done, None))
        elif isinstance(message, KillWorker):
            child = self.children.get(message.pid)
            if child is not None:
                child.send_signal(9)
        elif isinstance(message, SubscribeLogs):
            if message.sink not in self.log_sinks:
                self.log_sinks.add(message.sink)
                self.context.watch(message.sink)
        elif isinstance(message, Terminated):
            self.log_sinks.discard(message.ref)
        elif isinstance(message, ListWorkers):
            return sorted(self.children)
        elif isinstance(message, PrepareRuntimeEnv):
            reply = self.context.defer_reply()  # set up in the background: the mailbox stays free
            task = asyncio.get_running_loop().create_task(self._prepare_for(message.runtime_env, reply))
            self.setting_up[task] = message.runtime_env
            task.add_done_callback(lambda done: self.setting_up.pop(done, None))
        return None

    async def _prepare_for(self, runtime_env: str, reply) -> None:
        """Answer `reply` with the setup of `runtime_env` (a `PrepareRuntimeEnv`), or why there is none."""
        try:
            if self.setups is None:
                raise RuntimeEnvSetupError("this node's pool has no GcsLink to fetch runtime env packages from")
            reply.send(await self.setups.prepare(runtime_env))
        except Exception as error:  # noqa: BLE001 - the asker hears of it
            reply.fail(error)

    async def _start_for(self, runtime_env: str, count: int) -> None:
        """Start `count` workers for `runtime_env`, once it is set up on this node."""
        try:
            if self.setups is None:
                raise RuntimeError("this node's pool has no GcsLink to fetch runtime env packages from")
            setup = await self.setups.prepare(runtime_env)
            for _ in range(count):
                await self.supervisor.start_child((setup,))
        except Exception as error:  # noqa: BLE001 - the leases waiting for it fail with it
            log.info("runtime env setup failed", error=str(error))
            why = error.error_message if isinstance(error, RuntimeEnvSetupError) else f"{type(error).__name__}: {error}"
            self.scheduler.tell(RuntimeEnvFailed(runtime_env, why))

    async def _prune_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.prune_interval)
            try:
                await self.prune_packages()
            except Exception as error:  # noqa: BLE001 - etcd away: the next round tries again
                log.debug("could not prune the node's runtime env packages", error=repr(error))

    async def prune_packages(self) -> list[str]:
        """Remove the extracted packages the cluster collected that no worker of the node runs
        or is being started with; their SHA-256s. The idle workers of such a package's envs
        are ended (its copy goes at a later round, once they are gone)."""
        extracted = self.setups.extracted() if self.setups is not None else set()
        if not extracted:
            return []
        keep = set(await self.gcs.ask(ListPackages(), timeout=30))
        collected = extracted - keep
        if not collected:
            return []
        stale = frozenset(key for key in self.runtime_envs.values() if collected & _shas(key))
        if stale:
            self.scheduler.tell(EndIdleWorkers(stale))
        for key in [*self.runtime_envs.values(), *self.setting_up.values()]:
            keep |= _shas(key)
        removed = await self.setups.prune(keep)
        if removed:
            log.info("removed the node's copies of collected runtime env packages", packages=removed)
        return removed

    async def _start_worker(self, info: StartInfo) -> ProcessChild:
        argv = self.worker_argv(info) if callable(self.worker_argv) else self.worker_argv
        setup: WorkerSetup | None = info.args[0] if info.args else None
        if setup is not None and setup.python is not None:  # its pip environment's interpreter
            argv = [setup.python, *argv[1:]]
        worker_id = uuid.uuid4().hex[:10]
        env = setup.env if setup is not None else self.env
        secrets = hand_over({"token": self.token, "tls": self.tls}, {**env, WORKER_ID_ENV: worker_id})
        try:
            child = await ProcessChild.start(
                argv, env=secrets.env, cwd=setup.cwd if setup is not None else self.cwd, pass_fds=(secrets.child_end,),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            secrets.abandon()
            raise
        secrets.started()
        self.worker_ids[child.pid] = worker_id
        if setup is not None:
            self.runtime_envs[child.pid] = setup.key
        return child

    def _on_event(self, event) -> None:
        if event.kind == "child_started":
            child = event.child
            self.children[child.pid] = child
            self.pid_of[event.child_id] = child.pid
            files = {}
            if self.log_files is not None:
                files = self.log_files.open(self.worker_ids.get(child.pid, "unknown"), child.pid)
                self.open_streams[child.pid] = len(files)
            for stream_name in ("stdout", "stderr"):
                stream = getattr(child.process, stream_name)
                task = asyncio.get_running_loop().create_task(
                    self._forward(child.pid, stream_name, stream, files.get(stream_name)))
                self.readers.add(task)
                task.add_done_callback(self.readers.discard)
        elif event.kind == "child_exited":
            pid = self.pid_of.pop(event.child_id, None)  # exit events carry the child's id only
            runtime_env = self.runtime_envs.pop(pid, "") if pid is not None else ""
            if pid is not None and self.children.pop(pid, None) is not None:
                died = WorkerDied(pid, _how(event.exit), runtime_env)
                self.scheduler.tell(died)
                if self.task_history is not None:
                    self.task_history.tell(died)
            if pid is not None:
                self.worker_ids.pop(pid, None)

    async def _forward(self, pid: int, stream_name: str, stream: asyncio.StreamReader, file=None) -> None:
        target = sys.stdout if stream_name == "stdout" else sys.stderr
        while True:
            line = await stream.readline()
            if not line:
                if file is not None and self.log_files is not None:
                    self._stream_ended(pid)
                return
            if file is not None:
                try:
                    file.write(line)
                except OSError as error:  # a full disk: the output still reaches the drivers
                    log.warning("cannot write a worker's log file", path=str(file.path), error=str(error))
                    file = None
            text = line.decode(errors="replace").rstrip("\n")
            if self.log_sinks:
                lines = LogLines(pid, stream_name, [text])
                for sink in self.log_sinks:
                    sink.tell(lines)
            else:
                print(f"(pid={pid}) {text}", file=target, flush=True)

    def _stream_ended(self, pid: int) -> None:
        """One of a worker's streams ended; once both have, its files are closed (they stay)."""
        self.open_streams[pid] -= 1
        if not self.open_streams[pid]:
            del self.open_streams[pid]
            self.log_files.close(pid)


def _shas(runtime_env: str) -> set[str]:
    """The SHA-256s of the packages runtime env `runtime_env` (canonical JSON) names."""
    return {sha_of_uri(uri) for uri in package_uris(runtime_env)}


def _how(exit) -> str:
    """How a worker process ended, in words (for ActorDiedError's cause)."""
    if exit is None:
        return "it ended"
    if exit.signal:
        import signal as signals

        try:
            name = signals.Signals(exit.signal).name
        except ValueError:
            name = f"signal {exit.signal}"
        return f"it was killed by {name}"
    if exit.code is not None:
        return f"it exited with code {exit.code}"
    return f"it ended ({exit.kind})"


def worker_environment(extra_sys_path: list[str]) -> dict:
    """The environment of the node's worker processes: ours, with `extra_sys_path` in front of
    PYTHONPATH and unbuffered output, without secrets (the token comes on a pipe). The str-hash
    seed is the user's (``PYTHONHASHSEED`` if set, else random per process, as in Ray): nothing
    of actorcore relies on `hash` agreeing across processes."""
    env = {k: v for k, v in os.environ.items()
           if k not in (TOKEN_ENV, ETCD_PASSWORD_ENV, RUNTIME_ENV_ENV, RUNTIME_ENV_PATHS_ENV)}
    path = [p for p in extra_sys_path if p]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    env["PYTHONUNBUFFERED"] = "1"  # worker output reaches the driver as it is printed
    return env
