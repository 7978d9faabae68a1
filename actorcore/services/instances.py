"""One actor name of a service across its incarnations, as a child of the daemon's supervisors.

The contracts this module keeps (docs/supervision.md, "The supervise daemon"):

- **Services are named, detached actors** in the namespace :data:`NAMESPACE`; a service with
  ``replicas = N`` is the actors ``name-0`` ... ``name-{N-1}``. Detached, they outlive the
  daemon (even a kill -9 of it).
- **Restored before any call.** The actor is made from :func:`service_class`, a subclass of the
  user's class whose constructor runs the user's ``__init__`` and then ``__restore__(state)``
  with the latest checkpoint: the constructor is one message, so no call reaches the actor
  before the restore.
- **Adoption.** The first start of a name by a daemon looks the name up; an actor that answers a
  ping is adopted, not restarted.
- **Checkpoints** (a class with ``__checkpoint__`` and ``__restore__``): every
  ``checkpoint_interval`` seconds (> 0) and when the daemon stops a service on purpose or hands
  it over, the state, pickled by the service itself, goes to etcd
  (``services/<name>/checkpoint``; at most :data:`MAX_CHECKPOINT_BYTES`, a larger state is
  refused with an error in the log and the previous checkpoint stays). An unchanged state is
  not written again, and a daemon writes at most :data:`CHECKPOINT_BUDGET` bytes a minute
  (etcd keeps an hour of history within its quota; a checkpoint over the budget waits).
- **The record** ``services/<name>`` (JSON, :meth:`ServiceState.write_record`) holds the
  service's spec, its group path, actor id, restarts, start time, last checkpoint time, the
  daemon's pid and ``stopped`` (the time of a stop on purpose).
- **Watching.** Every incarnation is watched with ``actorcore.watch``: this daemon owns the ones
  it created (it sees their death at once); an adopted one is detached, so once its owner (a
  previous daemon) is gone its death is the end of its worker process (or of its node). No
  pings: a service busy with a long call is not mistaken for a dead one.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import pickle
import time
from typing import Any

import cloudpickle

from supervisor import Exit, StartInfo

from .._logging import get_logger
from ..gcs import schema
from .spec import ServiceSpec

log = get_logger(__name__)

NAMESPACE = "services"
MAX_CHECKPOINT_BYTES = 1 << 20  # 1 MiB: etcd's default request limit is 1.5 MiB
CALL_TIMEOUT = 30.0  # seconds a ping or checkpoint call may take (it waits behind the calls before it)
NAME_WAIT = 5.0  # seconds a restart waits for the dead actor's name to be freed
# Checkpoint bytes a daemon writes to etcd per minute at most: etcd keeps an hour of history
# (auto-compaction) within its 2 GiB quota, so 16 MiB/min stays under 1 GiB whatever the services do.
CHECKPOINT_BUDGET = 16 << 20


class CheckpointBudget:
    """Checkpoint bytes written in the last minute, against :data:`CHECKPOINT_BUDGET`."""

    def __init__(self, limit: int = CHECKPOINT_BUDGET, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.writes: collections.deque[tuple[float, int]] = collections.deque()
        self.used = 0

    def allow(self, size: int) -> bool:
        """Count ``size`` bytes against the last minute's budget; False (and nothing counted) if over it."""
        now = time.monotonic()
        while self.writes and self.writes[0][0] < now - self.window:
            self.used -= self.writes.popleft()[1]
        if self.used + size > self.limit:
            return False
        self.writes.append((now, size))
        self.used += size
        return True


def service_key(cluster: str, name: str) -> str:
    """The etcd key of the record of the service actor ``name``."""
    return schema.key(cluster, "services", name)


def checkpoint_key(cluster: str, name: str) -> str:
    """The etcd key of the last checkpoint of the service actor ``name``."""
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

    def _actorcore_checkpoint(self) -> bytes:
        return cloudpickle.dumps(self.__checkpoint__())  # pickled here: the daemon never unpickles it

    return type(cls.__name__, (cls,), {
        "__init__": __init__, "_actorcore_ping": _actorcore_ping,
        "_actorcore_checkpoint": _actorcore_checkpoint, "__module__": __name__,
        "__qualname__": f"service_class.<locals>.{cls.__qualname__}",
    })


def checkpoints(cls: type) -> bool:
    """True if ``cls`` defines both ``__checkpoint__`` and ``__restore__``."""
    return callable(getattr(cls, "__checkpoint__", None)) and callable(getattr(cls, "__restore__", None))


def spec_json(service: ServiceSpec) -> dict:
    """A service's spec as JSON data for its record."""
    return {"class": service.class_path, "args": list(service.args), "kwargs": service.kwargs,
            "replicas": service.replicas, "restart": service.restart, "resources": service.resources,
            "num_cpus": service.num_cpus, "checkpoint_interval": service.checkpoint_interval,
            "backoff": list(service.backoff) if service.backoff else None}


class ServiceState:
    """One actor name of a service; ``start`` is its supervisor child's factory.

    ``owner`` is the daemon: it has ``etcd``, ``cluster``, ``started`` (the names it started or
    adopted once: a later start is a restart) and ``handing_over`` (stop without killing).
    """

    def __init__(self, owner: Any, service: ServiceSpec, cls: type, name: str, group: list[str]) -> None:
        self.owner, self.service, self.cls, self.name, self.group = owner, service, cls, name, group
        self.actor_class: Any = None
        self.record: dict = {}
        self.replacing = False  # the next start follows a change of the spec, not a failure
        self.stored_digest: bytes | None = None  # of the last checkpoint this daemon stored

    def update(self, service: ServiceSpec, cls: type, group: list[str]) -> None:
        """Take a reloaded spec of the service; a changed class is made into a new actor class at the next start."""
        if cls is not self.cls:
            self.actor_class = None
        self.service, self.cls, self.group = service, cls, group

    async def read_record(self) -> dict:
        """The record stored for this name, or ``{}`` if there is none or it is not JSON."""
        blob = await self.owner.etcd.get(service_key(self.owner.cluster, self.name))
        try:
            return json.loads(blob) if blob else {}
        except ValueError:
            return {}

    async def write_record(self, **fields: Any) -> None:
        """Update the record with ``fields`` and store it under :func:`service_key`."""
        self.record.update(fields)
        await self.owner.etcd.put(service_key(self.owner.cluster, self.name), json.dumps(self.record).encode())

    async def start(self, info: StartInfo) -> ServiceChild:
        """Start the service's actor: adopt a running one at the daemon's first start, else create it
        from its last checkpoint. Raises RuntimeError if the new actor does not answer."""
        import actorcore as ray

        old = await self.read_record()
        self.record = {"service": self.service.name, "name": self.name, "group": self.group,
                       "spec": spec_json(self.service), "restarts": old.get("restarts", 0),
                       "started": old.get("started"), "checkpoint_time": old.get("checkpoint_time"),
                       "actor_id": old.get("actor_id"), "daemon_pid": os.getpid(), "namespace": NAMESPACE,
                       "last_failure": old.get("last_failure")}
        first = self.name not in self.owner.started
        self.owner.started.add(self.name)
        replacing, self.replacing = self.replacing, False
        if first and info.cause is None:
            handle = await self._adopt()
            if handle is not None:
                log.warning("adopted a running service", service=self.name, actor=handle._actorcore_actor_id)
                await self.write_record()
                return ServiceChild(self, handle, owned=False)
            self.record["restarts"] = 0  # made anew by this daemon: its restarts count from here
        elif not replacing:
            self.record["restarts"] += 1
            if info.cause is not None and info.cause.abnormal:  # a failure: shown by status and the dashboard
                self.record["last_failure"] = {"exit": str(info.cause), "time": time.time()}
        blob = await self.owner.etcd.get(checkpoint_key(self.owner.cluster, self.name))
        handle = await asyncio.to_thread(self._create, blob)
        try:
            await asyncio.to_thread(ray.get, handle._actorcore_ping.remote(), timeout=CALL_TIMEOUT)
        except Exception as error:
            await asyncio.to_thread(kill_quietly, handle)
            raise RuntimeError(f"service {self.name!r} could not start: {error}") from error
        log.warning("started a service", service=self.name, actor=handle._actorcore_actor_id,
                    restored=blob is not None, restarts=self.record["restarts"])
        await self.write_record(actor_id=handle._actorcore_actor_id, started=time.time())
        return ServiceChild(self, handle, owned=True)

    async def _adopt(self) -> Any:
        import actorcore as ray

        try:
            handle = await asyncio.to_thread(ray.get_actor, self.name, NAMESPACE)
        except ValueError:
            return None
        try:
            await asyncio.to_thread(ray.get, handle._actorcore_ping.remote(), timeout=CALL_TIMEOUT)
            return handle
        except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
            log.warning("a service's actor does not answer; making it anew", service=self.name, error=repr(error))
            await asyncio.to_thread(kill_quietly, handle)
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
        """Ask the service for its state and store it (a failure is logged, not raised). A state
        equal to the last one stored is not written again; one over the daemon's byte budget
        waits for a later interval (:class:`CheckpointBudget`)."""
        import actorcore as ray

        try:
            blob = await asyncio.to_thread(ray.get, handle._actorcore_checkpoint.remote(), timeout=CALL_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
            log.warning("checkpoint failed", service=self.name, error=repr(error))
            return
        if len(blob) > MAX_CHECKPOINT_BYTES:
            log.error("checkpoint too large for etcd; not stored (the previous one stays)", service=self.name,
                      size=len(blob), limit=MAX_CHECKPOINT_BYTES)
            return
        digest = hashlib.blake2b(blob, digest_size=16).digest()
        if digest != self.stored_digest:
            if not self.owner.budget.allow(len(blob)):
                log.warning("checkpoint deferred: the daemon's etcd write budget is spent for this minute",
                            service=self.name, size=len(blob), budget=CHECKPOINT_BUDGET)
                return
            try:
                await self.owner.etcd.put(checkpoint_key(self.owner.cluster, self.name), blob)
            except Exception as error:  # noqa: BLE001 - etcd unreachable past its retries: try next time
                log.warning("checkpoint not stored: etcd failed", service=self.name, error=repr(error))
                return
            self.stored_digest = digest
        try:
            await self.write_record(checkpoint_time=time.time())
        except Exception as error:  # noqa: BLE001 - the record catches up at the next checkpoint
            log.warning("service record not updated: etcd failed", service=self.name, error=repr(error))

    async def forget(self) -> None:
        """The service left the spec: its record goes (its last checkpoint stays, so adding it
        back restores it)."""
        await self.owner.etcd.delete(service_key(self.owner.cluster, self.name))


class ServiceChild:
    """One incarnation of a service's actor, as a ``supervisor`` child."""

    def __init__(self, state: ServiceState, handle: Any, *, owned: bool) -> None:
        self.state, self.handle, self.owned = state, handle, owned
        self._exit: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stopping = False
        self._tasks = [asyncio.ensure_future(self._watch())]
        interval = state.service.checkpoint_interval
        if interval > 0 and checkpoints(state.cls):
            self._tasks.append(asyncio.ensure_future(self._checkpoints(interval)))

    async def _watch(self) -> None:
        import actorcore as ray

        reason = await asyncio.wrap_future(ray.watch(self.handle))
        if not self.owned and not self._stopping:
            await asyncio.to_thread(kill_quietly, self.handle)  # its name is freed for the next incarnation
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
        """The Exit of this incarnation: crashed when the actor died, shutdown when the daemon stopped it."""
        return await asyncio.shield(self._exit)

    async def shutdown(self, timeout: float | None, *, restarting: bool = False) -> Exit:
        """Checkpoint, then kill the actor; when the daemon hands its services over (or lost its
        leadership) the actor is left running for the next leader to adopt."""
        if self._exit.done():
            return self._exit.result()
        self._stopping = True
        for task in self._tasks[1:]:
            task.cancel()
        mode = self.state.owner.handing_over
        if checkpoints(self.state.cls) and mode != "lost":
            await self.state.checkpoint(self.handle)
        if not mode:
            await asyncio.to_thread(kill_quietly, self.handle)
            if not restarting:
                await self.state.write_record(stopped=time.time())
        self._tasks[0].cancel()
        self._resolve(Exit("shutdown"))
        return self._exit.result()

    def discard(self, why: Exit | None = None) -> None:
        """The supervisor will not restart it: stop watching and checkpointing the actor."""
        for task in self._tasks:
            task.cancel()


def kill_quietly(handle: Any) -> None:
    """``ray.kill(handle)``, logging a failure instead of raising it."""
    import actorcore as ray

    try:
        ray.kill(handle)
    except Exception as error:  # noqa: BLE001 - any failure of the call means the same here
        log.warning("could not kill a service's actor", actor=handle._actorcore_actor_id, error=repr(error))
