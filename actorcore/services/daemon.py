"""The ``actorcore supervise SPEC.toml`` daemon: keeps the services of a spec alive
(docs/supervision.md, "The supervise daemon").

How it runs (the modules it is made of):

- **Leadership** (:mod:`.leadership`): one daemon per cluster leads, under an etcd lease;
  others stand by and take over when the leader's lease ends. A daemon that loses its lease
  steps down at once and stands by again, leaving the services running.
- **The tree** (:mod:`.tree`): the leader runs one ``supervisor.Supervisor`` per group of the
  spec; each actor name is a child (:mod:`.instances`: named detached actors in the namespace
  ``services``, restored from their checkpoint before any call, adopted when still running).
- **Desired state and status in etcd.** ``services/<name>`` per actor name (by
  :mod:`.instances`), and the leader's record ``supervise/daemon`` (:meth:`Daemon.write_record`):
  pid, host, spec path, state (``starting``, ``running``, ``stopped``, ``handed over``,
  ``stepped down``, ``failed``), the tree, the escalations seen (a supervisor exceeding its
  restart intensity) and the last reload's result. ``actorcore supervise status`` reads both.
  Services in etcd that the spec no longer has are stopped when a daemon starts leading.
- **Reload**: SIGHUP, or ``actorcore supervise reload`` (it writes ``supervise/reload``, which
  the leader watches, and waits for the result in the daemon's record), re-reads the spec
  file; :meth:`.tree.ServiceTree.apply` changes only what changed. An invalid spec changes
  nothing and its error is the reload's result.
- **Stopping.** SIGTERM/SIGINT stop the daemon gracefully. With a standby waiting, the leader
  checkpoints its services and hands them over running; otherwise it checkpoints and stops them
  (reverse start order) and their records say ``stopped``. The checkpoints stay in etcd, so the
  next daemon restores them. Without ``--address`` and with no cluster on this machine the
  daemon starts a local head (other drivers reach it with ``init(address="auto")``) and stops
  it on exit.

The daemon's own code runs on one asyncio loop; actorcore's blocking API runs in threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from .._logging import get_logger
from ..gcs import schema
from .instances import NAMESPACE, CheckpointBudget, kill_quietly, service_key
from .leadership import Leadership, tell_ready
from .spec import SpecError, SupervisorSpec, load_spec, resolve_class
from .tree import ServiceTree

log = get_logger(__name__)

MAX_ESCALATIONS = 20  # the daemon's record keeps the latest ones


def daemon_key(cluster: str) -> str:
    """The etcd key of the leading daemon's record (state, tree, escalations, last reload)."""
    return schema.key(cluster, "supervise", "daemon")


def reload_key(cluster: str) -> str:
    """The etcd key ``actorcore supervise reload`` writes a request id to."""
    return schema.key(cluster, "supervise", "reload")


class Daemon:
    """The services of one spec file on one cluster, while this daemon leads (:meth:`lead`)."""

    def __init__(self, spec_path: str, spec: SupervisorSpec, classes: dict[str, type], etcd: Any,
                 cluster: str) -> None:
        self.spec_path, self.spec, self.classes = spec_path, spec, classes
        self.etcd, self.cluster = etcd, cluster
        self.started: set[str] = set()  # actor names started or adopted in this term
        self.handing_over: str | None = None  # None: a stop kills; "handover" / "lost": it does not
        self.node_lost: str | None = None  # why this daemon's own node is gone (it must leave)
        self.reloads: asyncio.Queue = asyncio.Queue()
        self.budget = CheckpointBudget()
        self.tree: ServiceTree | None = None
        self.record: dict = {}
        self._writes: set[asyncio.Task] = set()

    def request_reload(self, request_id: str | None = None) -> None:
        """Queue a re-read of the spec (SIGHUP, or a request under :func:`reload_key` with its id)."""
        self.reloads.put_nowait(request_id)

    async def lead(self, stopping: asyncio.Event, leadership: Leadership) -> str:
        """Keep the services until told to stop (``"stopped"``), the root supervisor gives up
        (``"failed"``) or the leadership is lost (``"lost"``)."""
        self.started, self.handing_over = set(), None
        self._reread_spec()
        self.tree = ServiceTree(self, self.spec, self.classes, self._event)
        self.record = {"pid": os.getpid(), "host": socket.gethostname(), "spec": self.spec_path,
                       "since": time.time(), "state": "starting", "tree": self.tree.describe(),
                       "escalations": [], "reason": None, "reload": None}
        await self.write_record()
        await self._stop_removed()
        root = self.tree.build()
        try:
            await root.start()
        except Exception as error:  # noqa: BLE001 - reported in the record and the exit code
            log.error("the services could not start", error=str(error))
            await self.write_record(state="failed", reason=str(error))
            return "failed"
        await self.write_record(state="running")
        log.warning("supervising", services=self.spec.actor_names(), pid=os.getpid())
        tell_ready("services up")
        watcher = asyncio.ensure_future(self._watch_reload_requests())
        waits = {name: asyncio.ensure_future(aw) for name, aw in
                 (("ended", root.wait()), ("stop", stopping.wait()), ("lost", leadership.lost.wait()))}
        try:
            while True:
                reload = asyncio.ensure_future(self.reloads.get())
                await asyncio.wait([reload, *waits.values()], return_when=asyncio.FIRST_COMPLETED)
                if not reload.done():
                    reload.cancel()
                    break
                await self.reload(reload.result())
        finally:
            watcher.cancel()
            for wait in waits.values():
                if not wait.done():
                    wait.cancel()
        if waits["ended"].done():
            exit = waits["ended"].result()
            log.error("the supervisor gave up", exit=str(exit))
            await self.write_record(state="failed", reason=str(exit))
            return "failed"
        if waits["lost"].done() or self.node_lost:
            self.handing_over = "lost"  # leave the services as they are: another daemon takes them
            await root.shutdown()
            self.record["state"] = "stepped down"
            return "lost" if not self.node_lost else "failed"
        if await leadership.standbys():
            self.handing_over = "handover"
            log.warning("handing the services over to a standby daemon (checkpointed, left running)")
        else:
            log.warning("stopping the services")
        exit = await root.shutdown()
        await self.write_record(state="handed over" if self.handing_over else "stopped",
                                reason=None if not exit.abnormal else str(exit))
        return "stopped"

    def _reread_spec(self) -> None:
        """A standby taking over reads the spec file again: it may have changed while it waited."""
        try:
            self.spec, self.classes = load(self.spec_path)
        except (SpecError, OSError) as error:
            log.error("the spec file is now invalid; keeping the one read before", error=str(error))

    async def _stop_removed(self) -> None:
        """Services recorded in etcd that this spec does not have: stop them, forget their records."""
        wanted = set(self.spec.actor_names())
        prefix = service_key(self.cluster, "")
        for key, _ in await self.etcd.get_prefix(prefix):
            name = key[len(prefix):]
            if "/" in name or name in wanted:
                continue
            handle = await asyncio.to_thread(_actor_or_none, name)
            if handle is not None:
                log.warning("stopping a service the spec no longer has", service=name)
                await asyncio.to_thread(kill_quietly, handle)
            await self.etcd.delete(key)

    async def _watch_reload_requests(self) -> None:
        _, revision = await self.etcd.get_prefix_with_revision(reload_key(self.cluster))
        async with self.etcd.watch_prefix(reload_key(self.cluster), start_revision=revision + 1) as watch:
            async for event in watch:
                if event.type == "put" and event.key == reload_key(self.cluster):
                    try:
                        request_id = json.loads(event.value).get("id")
                    except (ValueError, AttributeError):
                        request_id = None
                    self.request_reload(request_id)

    async def reload(self, request_id: str | None) -> dict:
        """Re-read the spec file and change the running tree to it (see :mod:`.tree`)."""
        assert self.tree is not None
        try:
            spec, classes = await asyncio.to_thread(load, self.spec_path)
        except (SpecError, OSError) as error:
            result: dict = {"ok": False, "error": f"invalid spec, nothing changed: {error}"}
        else:
            changes = await self.tree.apply(spec, classes)
            self.spec, self.classes = spec, {**self.classes, **classes}
            result = {"ok": not changes["errors"], **changes}
        result.update(id=request_id, time=time.time())
        log.warning("reloaded the spec", **{k: v for k, v in result.items() if k not in ("id", "time")})
        await self.write_record(reload=result, tree=self.tree.describe())
        return result

    async def write_record(self, **fields: Any) -> None:
        """Update the daemon's record with ``fields`` and store it under :func:`daemon_key`."""
        self.record.update(fields)
        await self.etcd.put(daemon_key(self.cluster), json.dumps(self.record).encode())

    def _event(self, event: Any) -> None:
        fields = {"kind": event.kind, "supervisor": event.supervisor, "child": event.child_id}
        if event.exit is not None:
            fields["exit"] = str(event.exit)
        if event.error is not None:
            fields["error"] = repr(event.error)
        log.warning("supervision", **fields)
        if event.kind == "intensity_exceeded":
            escalation = {"time": time.time(), "supervisor": event.supervisor, "child": event.child_id,
                          "exit": str(event.exit)}
            self.record["escalations"] = [*self.record.get("escalations", []), escalation][-MAX_ESCALATIONS:]
            task = asyncio.ensure_future(self.write_record())
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)


def _actor_or_none(name: str) -> Any:
    import actorcore as ray

    try:
        return ray.get_actor(name, NAMESPACE)
    except ValueError:
        return None


# -- the process ------------------------------------------------------------------------------

def load(path: str) -> tuple[SupervisorSpec, dict[str, type]]:
    """The spec and every service's class, checked before anything starts (raises SpecError)."""
    spec = load_spec(path)
    classes = {}
    for service in spec.services():
        cls = resolve_class(service, spec.source)
        cls = getattr(cls, "_cls", cls)  # an @actorcore.remote class: the class it wraps
        if hasattr(cls, "__checkpoint__") != hasattr(cls, "__restore__"):
            raise SpecError(f"{spec.source}: service {service.name!r}: field 'class' {service.class_path!r} "
                            "defines only one of __checkpoint__ and __restore__; define both (or neither)",
                            source=spec.source, kind="service", name=service.name, field="class")
        classes[service.name] = cls
    return spec, classes


def _start_local_head() -> str:
    from actorcore.gcs.etcd_server import _free_port

    port = _free_port()
    result = subprocess.run([sys.executable, "-m", "actorcore", "start", "--head", "--port", str(port)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"could not start a local head node:\n{result.stdout}{result.stderr}")
    return f"127.0.0.1:{port}"


def _calling_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> Callable:
    """A signal handler that has `loop` call `callback`; once the loop is closed, it does nothing."""

    def handler(_signum, _frame) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: the daemon is ending
            pass

    return handler


def main(spec_path: str, address: str | None, pid_file: str | None = None) -> int:
    """``actorcore supervise``: 0 after a graceful stop, 1 if the supervisor gave up or failed,
    2 for an invalid spec (nothing started)."""
    import actorcore as ray
    from actorcore import cluster_files as files
    from actorcore.gcs.sealed import SealedEtcd

    spec_path = os.path.abspath(spec_path)
    try:
        spec, classes = load(spec_path)
    except SpecError as error:
        print(f"actorcore supervise: invalid spec: {error}", file=sys.stderr)
        return 2
    local_head = False
    if address is None:
        info = files.read_cluster_info()
        if info is not None:
            address = info["address"]
        else:
            address = _start_local_head()
            local_head = True
    cluster, auth = files.cluster_at(address)
    if pid_file:
        write_pid_file(pid_file)
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.INFO)

        async def run() -> int:
            etcd = await SealedEtcd.connect(address, secret=files.read_token(), auth=auth, timeout=10)
            config = schema.ClusterConfig.from_json(await etcd.get(schema.key(cluster, "config")))
            leadership = Leadership(etcd, cluster, config.lease_ttl, spec_path)
            daemon = Daemon(spec_path, spec, classes, etcd, cluster)
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            # Handlers of the signal module, not the loop's: closing the loop would put the
            # default ones back, and a SIGTERM during the rest of the exit would kill the daemon.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, _calling_soon(loop, stopping.set))
            signal.signal(signal.SIGHUP, _calling_soon(loop, daemon.request_reload))

            def node_gone(reason: str) -> None:
                daemon.node_lost = reason
                log.error("the node this daemon reaches the cluster through is gone; it exits and leaves the "
                          "services to the next daemon", reason=reason)
                stopping.set()

            node_watch = _watch_own_node(lambda reason: loop.call_soon_threadsafe(node_gone, reason))
            outcome = "stopped"
            try:
                while await leadership.campaign(stopping):
                    outcome = await daemon.lead(stopping, leadership)
                    if outcome != "lost":
                        break
                    log.warning("stepped down; standing by")
                    outcome = "stopped"
            finally:
                node_watch.cancel()
                try:
                    await leadership.release()
                except Exception as error:  # noqa: BLE001 - etcd gone: the lease expires by itself
                    log.warning("could not release the leadership", error=repr(error))
                await etcd.close()
            return 0 if outcome == "stopped" and daemon.node_lost is None else 1

        return asyncio.run(run())
    except Exception as error:  # noqa: BLE001 - reported, exit code 1
        print(f"actorcore supervise: {error}", file=sys.stderr)
        return 1
    finally:
        # The daemon is ending: a late SIGTERM must not kill it before it has let go of the
        # cluster and its pid file.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        ray.shutdown()
        if pid_file:
            remove_pid_file(pid_file)
        if local_head:
            subprocess.run([sys.executable, "-m", "actorcore", "stop"], capture_output=True, check=False)


def write_pid_file(path: str) -> None:
    """Write this process's pid to `path` atomically, never through a symlink: a new file beside
    it (created, not opened) is renamed over it, which replaces a symlink there, not its target."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_pid_file(path: str) -> None:
    """Remove `path` if it is still this process's pid file (a regular file naming our pid)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone, or a symlink put there since: not ours
        return
    with os.fdopen(fd) as file:
        ours = file.read(32).strip() == str(os.getpid())
    if ours:
        try:
            os.unlink(path)
        except OSError:
            pass


def _watch_own_node(on_gone: Any) -> Any:
    """Death watch on the node this process attached to: ``on_gone(reason)`` runs (on
    actorcore's thread) when it ends. Returns the watch's future (cancel it to stop watching)."""
    from actorcore import api

    core = api._runtime()
    future = asyncio.run_coroutine_threadsafe(core.deaths.process_death(core.scheduler, "its node process"), core.loop)

    def done(finished: Any) -> None:
        if not finished.cancelled() and finished.exception() is None:
            on_gone(finished.result())

    future.add_done_callback(done)
    return future


async def request_reload(etcd: Any, cluster: str, timeout: float = 60.0) -> dict:
    """``actorcore supervise reload``: ask the leading daemon to re-read its spec; its result."""
    from .leadership import leader_key

    if await etcd.get(leader_key(cluster)) is None:
        raise RuntimeError("no `actorcore supervise` daemon leads on this cluster")
    request_id = uuid.uuid4().hex

    async def answer() -> dict:
        _, revision = await etcd.get_prefix_with_revision(daemon_key(cluster))
        async with etcd.watch_prefix(daemon_key(cluster), start_revision=revision + 1) as watch:
            await etcd.put(reload_key(cluster), json.dumps({"id": request_id, "time": time.time()}).encode())
            async for event in watch:
                if event.type == "put" and event.key == daemon_key(cluster):
                    result = json.loads(event.value).get("reload") or {}
                    if result.get("id") == request_id:
                        return result
        raise RuntimeError("the watch on the daemon's record ended")

    try:
        return await asyncio.wait_for(answer(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"the daemon did not answer the reload within {timeout:.0f} s") from None
