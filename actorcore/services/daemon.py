"""The ``actorcore supervise SPEC.toml`` daemon: keeps the services of a spec alive (issue 6).

What it does, and how (the choices of this first cut):

- **Services are named, detached actors** in the namespace :data:`NAMESPACE` (``"services"``):
  ``get_actor("counter", namespace="services")`` reaches one from any driver (or
  ``init(address="auto", namespace="services")`` then ``get_actor("counter")``); a service with
  ``replicas = N`` is the actors ``counter-0`` ... ``counter-{N-1}``. Detached, they outlive the
  daemon: a daemon that dies (even with kill -9) leaves them running.
- **Restored before any call.** An actor is made from a subclass of the user's class built at
  run time (:func:`service_class`): its ``__init__`` runs the user's ``__init__`` and then, when
  a checkpoint exists, ``__restore__(state)``; the constructor is one message, so no call can
  reach the actor before the restore. The subclass adds ``_actorcore_ping`` (liveness) and
  ``_actorcore_checkpoint`` (calls ``__checkpoint__``: dunder methods are not callable on a
  handle).
- **Supervision is the** ``supervisor`` **package's**: one :class:`supervisor.Supervisor` per
  group of the spec (the root's strategy / max_restarts / period, nested groups as nested
  supervisors), one child per actor name (:class:`_ServiceChild`), so strategies, intensity,
  backoff and escalation come from one place. A child's ``wait()`` resolves when the actor is
  dead for good: by ``actorcore.watch`` for actors this daemon created (it owns them: the death
  of the worker is seen at once), by a ping every :data:`PING_INTERVAL` seconds for adopted
  ones (their owner, a previous daemon, is gone, so nobody else would tell).
- **Adoption.** At its first start a child looks the name up; an actor that answers a ping is
  adopted, not restarted (its restart count and start time come from its ``services/<name>``
  record). One that does not answer is killed (which frees its name) and made anew.
- **Checkpoints** (classes with ``__checkpoint__`` and ``__restore__``): every
  ``checkpoint_interval`` seconds (> 0) and when the daemon stops a service on purpose, the
  daemon calls ``__checkpoint__`` and writes the pickled state to etcd under
  ``/actorcore/<cluster>/services/<name>/checkpoint``. etcd is for small state: a state larger
  than :data:`MAX_CHECKPOINT_BYTES` is not stored (an error is logged; the previous checkpoint
  stays). A new incarnation is restored from the latest checkpoint.
- **Desired state and status** in ``/actorcore/<cluster>/services/<name>`` (JSON, one record
  per actor name, see :func:`record`): the service's spec, its actor id, restarts, start time,
  last checkpoint time, the daemon's pid, and ``stopped`` (the time of a stop on purpose);
  ``actorcore supervise-status`` reads them
  (:mod:`actorcore.services.status`).
- **Stopping.** SIGTERM/SIGINT stop the daemon gracefully: the supervisors stop their children
  in reverse start order, each checkpointed then killed; the checkpoints stay in etcd, so the
  next daemon restores them. Without ``--address`` the daemon starts a local head
  (``actorcore start --head``, so other drivers reach it with ``init(address="auto")``) and
  stops it on exit.

The daemon's own code runs on one asyncio loop; actorcore's blocking API runs in threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Any

from supervisor import Backoff, Exit, StartInfo, Supervisor, supervisor_spec
from supervisor import ChildSpec as SupervisorChildSpec

from .._logging import get_logger
from ..gcs import schema
from .spec import GroupSpec, ServiceSpec, SpecError, SupervisorSpec, load_spec, resolve_class

log = get_logger(__name__)

NAMESPACE = "services"
MAX_CHECKPOINT_BYTES = 1 << 20  # 1 MiB: etcd's default request limit is 1.5 MiB
PING_INTERVAL = 0.5  # seconds between liveness pings of an adopted service
PING_TIMEOUT = 10.0  # a ping not answered within this is a dead service (calls run one at a time)
CALL_TIMEOUT = 30.0  # seconds a checkpoint call may take
NAME_WAIT = 5.0  # seconds a restart waits for the dead actor's name to be freed


def service_key(cluster: str, name: str) -> str:
    return schema.key(cluster, "services", name)


def checkpoint_key(cluster: str, name: str) -> str:
    return schema.key(cluster, "services", name, "checkpoint")


def service_class(cls: type) -> type:
    """The class the daemon's actors are made of: ``cls`` restored from a checkpoint in its
    constructor (keyword ``_actorcore_checkpoint``: the pickled state, or None)."""

    def __init__(self, *args, _actorcore_checkpoint: bytes | None = None, **kwargs):
        cls.__init__(self, *args, **kwargs)
        if _actorcore_checkpoint is not None:
            self.__restore__(pickle.loads(_actorcore_checkpoint))

    def _actorcore_ping(self) -> int:
        return os.getpid()

    def _actorcore_checkpoint(self) -> Any:
        return self.__checkpoint__()

    return type(cls.__name__, (cls,), {
        "__init__": __init__, "_actorcore_ping": _actorcore_ping,
        "_actorcore_checkpoint": _actorcore_checkpoint, "__module__": __name__,
        "__qualname__": f"service_class.<locals>.{cls.__qualname__}",
    })


def checkpoints(cls: type) -> bool:
    return callable(getattr(cls, "__checkpoint__", None)) and callable(getattr(cls, "__restore__", None))


def spec_json(service: ServiceSpec) -> dict:
    return {"class": service.class_path, "args": list(service.args), "kwargs": service.kwargs,
            "replicas": service.replicas, "restart": service.restart, "resources": service.resources,
            "num_cpus": service.num_cpus, "checkpoint_interval": service.checkpoint_interval,
            "backoff": list(service.backoff) if service.backoff else None}


class Daemon:
    """The services of one spec on one cluster (create with :meth:`connect`, then :meth:`run`)."""

    def __init__(self, spec: SupervisorSpec, classes: dict[str, type], etcd: Any, cluster: str) -> None:
        self.spec, self.classes, self.etcd, self.cluster = spec, classes, etcd, cluster
        self.stopping = asyncio.Event()
        self.root: Supervisor | None = None

    async def run(self) -> Exit:
        self.root = Supervisor(self._children(self.spec), strategy=self.spec.strategy,
                               max_restarts=self.spec.max_restarts, period=self.spec.period,
                               name=self.spec.name, on_event=self._event)
        await self.root.start()
        log.warning("supervising", services=self.spec.actor_names(), pid=os.getpid())
        _tell_ready()
        ended = asyncio.ensure_future(self.root.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([ended, stop], return_when=asyncio.FIRST_COMPLETED)
        if not ended.done():
            log.warning("stopping the services")
            exit = await self.root.shutdown()
        else:
            exit = ended.result()
            log.error("the supervisor gave up", exit=str(exit))
        stop.cancel()
        return exit

    def _children(self, group: GroupSpec) -> list[SupervisorChildSpec]:
        children = []
        for child in group.children:
            if isinstance(child, GroupSpec):
                children.append(supervisor_spec(child.name, self._children(child), strategy=child.strategy,
                                                max_restarts=child.max_restarts, period=child.period,
                                                on_event=self._event))
                continue
            backoff = Backoff(min=child.backoff[0], max=child.backoff[1]) if child.backoff else None
            for index, name in enumerate(child.actor_names()):
                state = _ServiceState(self, child, name)
                children.append(SupervisorChildSpec(name, state.start, restart=child.restart,  # type: ignore[arg-type]
                                                    shutdown=CALL_TIMEOUT, backoff=backoff))
        return children

    def _event(self, event: Any) -> None:
        fields = {"kind": event.kind, "supervisor": event.supervisor, "child": event.child_id}
        if event.exit is not None:
            fields["exit"] = str(event.exit)
        if event.error is not None:
            fields["error"] = repr(event.error)
        log.warning("supervision", **fields)


class _ServiceState:
    """One actor name of a service across its incarnations; ``start`` is the child's factory."""

    def __init__(self, daemon: Daemon, service: ServiceSpec, name: str) -> None:
        self.daemon, self.service, self.name = daemon, service, name
        self.cls = daemon.classes[service.name]
        self.actor_class: Any = None
        self.record: dict = {}

    async def _read_record(self) -> dict:
        blob = await self.daemon.etcd.get(service_key(self.daemon.cluster, self.name))
        try:
            return json.loads(blob) if blob else {}
        except ValueError:
            return {}

    async def write_record(self, **fields: Any) -> None:
        self.record.update(fields)
        await self.daemon.etcd.put(service_key(self.daemon.cluster, self.name), json.dumps(self.record).encode())

    async def start(self, info: StartInfo) -> _ServiceChild:
        import actorcore as ray

        old = await self._read_record()
        self.record = {"service": self.service.name, "name": self.name, "spec": spec_json(self.service),
                       "restarts": old.get("restarts", 0), "started": old.get("started"),
                       "checkpoint_time": old.get("checkpoint_time"), "actor_id": old.get("actor_id"),
                       "daemon_pid": os.getpid(), "namespace": NAMESPACE}
        if info.incarnation == 0 and info.cause is None:
            handle = await self._adopt()
            if handle is not None:
                log.warning("adopted a running service", service=self.name, actor=handle._actor_id)
                await self.write_record()
                return _ServiceChild(self, handle, owned=False)
            self.record["restarts"] = 0  # made anew by this daemon: its restarts count from here
        else:
            self.record["restarts"] += 1
        blob = await self.daemon.etcd.get(checkpoint_key(self.daemon.cluster, self.name))
        handle = await asyncio.to_thread(self._create, blob)
        try:
            await asyncio.to_thread(ray.get, handle._actorcore_ping.remote(), timeout=CALL_TIMEOUT)
        except Exception as error:
            await asyncio.to_thread(_kill_quietly, handle)
            raise RuntimeError(f"service {self.name!r} could not start: {error}") from error
        log.warning("started a service", service=self.name, actor=handle._actor_id,
                    restored=blob is not None, restarts=self.record["restarts"])
        await self.write_record(actor_id=handle._actor_id, started=time.time())
        return _ServiceChild(self, handle, owned=True)

    async def _adopt(self) -> Any:
        import actorcore as ray

        try:
            handle = await asyncio.to_thread(ray.get_actor, self.name, NAMESPACE)
        except ValueError:
            return None
        try:
            await asyncio.to_thread(ray.get, handle._actorcore_ping.remote(), timeout=PING_TIMEOUT)
            return handle
        except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
            log.warning("a service's actor does not answer; making it anew", service=self.name, error=repr(error))
            await asyncio.to_thread(_kill_quietly, handle)
            return None

    def _create(self, blob: bytes | None) -> Any:
        import actorcore as ray
        from actorcore.exceptions import ActorAlreadyExistsError

        if self.actor_class is None:
            self.actor_class = ray.remote(service_class(self.cls))
        options: dict = {"name": self.name, "namespace": NAMESPACE, "lifetime": "detached"}
        if self.service.num_cpus is not None:
            options["num_cpus"] = self.service.num_cpus
        if self.service.resources:
            options["resources"] = dict(self.service.resources)
        kwargs = dict(self.service.kwargs)
        if blob is not None:
            kwargs["_actorcore_checkpoint"] = blob
        deadline = time.monotonic() + NAME_WAIT
        while True:  # the dead incarnation's name is freed by its node, a moment after its death
            try:
                return self.actor_class.options(**options).remote(*self.service.args, **kwargs)
            except ActorAlreadyExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    async def checkpoint(self, handle: Any) -> None:
        """Ask the service for its state and store it (a failure is logged, not raised)."""
        import actorcore as ray

        try:
            state = await asyncio.to_thread(ray.get, handle._actorcore_checkpoint.remote(), timeout=CALL_TIMEOUT)
            blob = pickle.dumps(state)
        except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
            log.warning("checkpoint failed", service=self.name, error=repr(error))
            return
        if len(blob) > MAX_CHECKPOINT_BYTES:
            log.error("checkpoint too large for etcd; not stored (the previous one stays)", service=self.name,
                      size=len(blob), limit=MAX_CHECKPOINT_BYTES)
            return
        await self.daemon.etcd.put(checkpoint_key(self.daemon.cluster, self.name), blob)
        await self.write_record(checkpoint_time=time.time())


class _ServiceChild:
    """One incarnation of a service's actor, as a ``supervisor`` child."""

    def __init__(self, state: _ServiceState, handle: Any, *, owned: bool) -> None:
        self.state, self.handle, self.owned = state, handle, owned
        self._exit: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stopping = False
        self._tasks = [asyncio.ensure_future(self._watch())]
        interval = state.service.checkpoint_interval
        if interval > 0 and checkpoints(state.cls):
            self._tasks.append(asyncio.ensure_future(self._checkpoints(interval)))

    async def _watch(self) -> None:
        import actorcore as ray

        if self.owned:
            reason = await asyncio.wrap_future(ray.watch(self.handle))
        else:
            while True:
                await asyncio.sleep(PING_INTERVAL)
                try:
                    await asyncio.to_thread(ray.get, self.handle._actorcore_ping.remote(), timeout=PING_TIMEOUT)
                except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
                    reason = f"it does not answer: {error!r}"
                    await asyncio.to_thread(_kill_quietly, self.handle)  # frees its name
                    break
        for task in self._tasks[1:]:  # its checkpoints end with it (a restart is a new incarnation)
            task.cancel()
        if not self._stopping:
            log.error("a service died", service=self.state.name, reason=reason)
        self._resolve(Exit("shutdown") if self._stopping else Exit("crashed", detail=reason))

    async def _checkpoints(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.state.checkpoint(self.handle)

    def _resolve(self, exit: Exit) -> None:
        if not self._exit.done():
            self._exit.set_result(exit)

    async def wait(self) -> Exit:
        return await asyncio.shield(self._exit)

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        if self._exit.done():
            return self._exit.result()
        self._stopping = True
        for task in self._tasks[1:]:
            task.cancel()
        if checkpoints(self.state.cls):
            await self.state.checkpoint(self.handle)
        await asyncio.to_thread(_kill_quietly, self.handle)
        if not restarting:
            await self.state.write_record(stopped=time.time())
        self._tasks[0].cancel()
        self._resolve(Exit("shutdown"))
        return self._exit.result()

    def discard(self, why: Exit | None = None) -> None:
        for task in self._tasks:
            task.cancel()


def _kill_quietly(handle: Any) -> None:
    import actorcore as ray

    try:
        ray.kill(handle)
    except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
        log.warning("could not kill a service's actor", actor=handle._actor_id, error=repr(error))


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


READY_FD_ENV = "ACTORCORE_SUPERVISE_READY_FD"


def _tell_ready() -> None:
    """`supervise --detach` waits for this line: every service is up."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None:
        try:
            with os.fdopen(int(fd), "w") as out:
                out.write("ready\n")
        except OSError:
            pass


def main(spec_path: str, address: str | None, pid_file: str | None = None) -> int:
    """``actorcore supervise``: 0 after a graceful stop, 1 if the supervisor gave up or failed,
    2 for an invalid spec (nothing started)."""
    import actorcore as ray
    from actorcore import cluster_files as files
    from actorcore.gcs.etcd_client import EtcdClient

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
    info = files.read_cluster_info() or {}
    same = info.get("address") == address
    cluster = info.get("cluster", schema.DEFAULT_CLUSTER) if same else schema.DEFAULT_CLUSTER
    auth = (info.get("etcd_auth") or None) if same else None
    if pid_file:
        with open(pid_file, "w") as file:
            file.write(f"{os.getpid()}\n")
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.INFO)

        async def run() -> int:
            etcd = await EtcdClient.connect(address, auth=auth, timeout=10)
            daemon = Daemon(spec, classes, etcd, cluster)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, daemon.stopping.set)
            try:
                exit = await daemon.run()
            finally:
                await etcd.close()
            return 0 if daemon.stopping.is_set() and not exit.abnormal else 1

        return asyncio.run(run())
    except Exception as error:  # noqa: BLE001 - reported, exit code 1
        print(f"actorcore supervise: {error}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
        if local_head:
            subprocess.run([sys.executable, "-m", "actorcore", "stop"], capture_output=True, check=False)
