"""One active ``actorcore supervise`` daemon per cluster: leadership held under an etcd lease.

The contract (docs/supervision.md, "The supervise daemon"; node membership under leases,
applied to daemons): the leader is the daemon whose record is the key ``supervise/leader``,
created if absent under its own lease and kept alive by it. Every other daemon is a *standby*:
it registers ``supervise/standby/<lease>`` (so the leader and ``supervise status`` can see it)
and watches the leader key; when the key goes away (the leader released it, or its lease
expired because it died or froze) the standby creates it and leads. A killed leader is
therefore replaced within its lease TTL plus etcd's expiry tick (etcd revokes expired leases
every 0.5 s).

A daemon started on the machine of a leader that is surely gone does not wait for the lease:
the leader's record names its process exactly (:func:`process_token`: the kernel's boot id,
the pid namespace, the pid and the process's start time), so when the same kernel and pid
namespace have no such process the daemon removes the record (if it is unchanged) and leads
at once: a daemon restarted after a kill -9 takes its services back without waiting a TTL.

A leader whose lease is lost (etcd said it expired: another daemon may lead by now) must stop
acting at once; :attr:`Leadership.lost` tells it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
from typing import Any

from .._logging import get_logger
from ..env import SUPERVISE_READY_FD_ENV
from ..gcs import schema

log = get_logger(__name__)


def leader_key(cluster: str) -> str:
    """The etcd key the leading daemon holds with its lease."""
    return schema.key(cluster, "supervise", "leader")


def standby_prefix(cluster: str) -> str:
    """The etcd prefix under which daemons waiting to lead register."""
    return schema.key(cluster, "supervise", "standby", "")


class Leadership:
    """This daemon's claim on ``supervise/leader`` (see the module docstring)."""

    def __init__(self, etcd: Any, cluster: str, ttl: float, spec_path: str) -> None:
        self.etcd, self.cluster = etcd, cluster
        self.ttl = max(2, math.ceil(ttl))
        self.identity = {"pid": os.getpid(), "host": socket.gethostname(), "spec": spec_path,
                         "process": process_token()}
        self.lease: Any = None
        self.lost = asyncio.Event()
        """Set when the lease of a leading daemon ended without :meth:`release`."""
        self.leading = False

    async def campaign(self, stop: asyncio.Event) -> bool:
        """Wait until this daemon leads (True), or until ``stop`` is set first (False)."""
        announced = False
        while not stop.is_set():
            if self.lease is None or self.lease.lost:
                self.lease = await self.etcd.lease(self.ttl, on_lost=self._on_lost)
                await self.etcd.put(standby_prefix(self.cluster) + f"{self.lease.id:x}",
                                    json.dumps(self.identity).encode(), lease=self.lease)
                if stop.is_set():  # told to stop meanwhile: never claim the services now
                    break
            value = json.dumps({**self.identity, "lease": f"{self.lease.id:x}", "since": time.time()}).encode()
            if await self.etcd.create_if_absent(leader_key(self.cluster), value, lease=self.lease):
                if stop.is_set():  # told to stop while claiming: release() gives the key back untouched
                    return False
                await self.etcd.delete(standby_prefix(self.cluster) + f"{self.lease.id:x}")
                self.lost.clear()
                self.leading = True
                log.warning("leading: this daemon keeps the services", lease=f"{self.lease.id:x}", ttl=self.ttl)
                return True
            items, revision = await self.etcd.get_prefix_with_revision(leader_key(self.cluster))
            if not items:
                continue  # released between our two calls
            if process_gone(json.loads(items[0][1]).get("process")):
                log.warning("the leading daemon's process is gone; taking over without waiting for its lease",
                            leader=json.loads(items[0][1]).get("pid"))
                await self.etcd.delete_if_value(leader_key(self.cluster), items[0][1])
                continue
            if not announced:
                leader = json.loads(items[0][1])
                log.warning("standby: another daemon leads; this one takes over when it ends",
                            leader_pid=leader.get("pid"), leader_host=leader.get("host"), ttl=self.ttl)
                if leader.get("spec") != self.identity["spec"]:
                    log.warning("the leader runs another spec file; this daemon will run its own when it "
                                "takes over (services only the leader's spec has will then stop)",
                                leader_spec=leader.get("spec"), spec=self.identity["spec"])
                tell_ready("standing by")
                announced = True
            await self._until_released(revision + 1, stop)
        return False

    async def _until_released(self, revision: int, stop: asyncio.Event) -> None:
        async with self.etcd.watch_prefix(leader_key(self.cluster), start_revision=revision) as watch:
            stopped = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    event = asyncio.ensure_future(watch.__anext__())
                    await asyncio.wait([event, stopped], return_when=asyncio.FIRST_COMPLETED)
                    if not event.done():
                        # Closed, the watch ends its read even if the cancellation is lost.
                        await watch.aclose()
                        event.cancel()
                        await asyncio.gather(event, return_exceptions=True)
                        return
                    if event.result().type == "delete":
                        return
            finally:
                stopped.cancel()

    async def standbys(self) -> int:
        """How many other daemons stand by."""
        return len(await self.etcd.get_prefix(standby_prefix(self.cluster)))

    async def release(self) -> None:
        """Give up leadership (or the standby place) now: the lease and its keys go."""
        lease, self.lease = self.lease, None
        self.leading = False
        if lease is not None and not lease.lost:
            await lease.revoke()

    def _on_lost(self, lease: Any) -> None:
        if lease is self.lease and self.leading:
            log.error("leadership lost: the lease expired (etcd unreachable, or this daemon was frozen); "
                      "another daemon may lead now, so this one stops acting", lease=f"{lease.id:x}")
            self.leading = False
            self.lost.set()


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot), None if there is none (or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def _namespace() -> tuple[str | None, str | None]:
    try:
        pid_namespace: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = None
    return _read("/proc/sys/kernel/random/boot_id"), pid_namespace


def process_token() -> str | None:
    """This process, exactly: ``boot id|pid namespace|pid|start time`` (None without /proc)."""
    boot, namespace = _namespace()
    start = _start_time(os.getpid())
    if not (boot and namespace and start):
        return None
    return f"{boot}|{namespace}|{os.getpid()}|{start}"


def process_gone(token: str | None) -> bool:
    """True only when ``token`` names a process of this kernel and pid namespace that no longer
    runs (its pid is free, or taken by a later process)."""
    if not token or token.count("|") != 3:
        return False
    boot, namespace, pid, start = token.split("|")
    if (boot, namespace) != _namespace() or not pid.isdigit():
        return False
    return _start_time(int(pid)) != start


READY_FD_ENV = SUPERVISE_READY_FD_ENV


def tell_ready(what: str) -> None:
    """``supervise --detach`` waits for this line (``what``: "services up", or "standing by")."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None:
        try:
            with os.fdopen(int(fd), "w") as out:
                out.write(f"{what}\n")
        except OSError:
            pass
