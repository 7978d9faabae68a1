"""Fakes of the core's collaborators, for in-process tests of one part at a time.

`FakeRef` stands for an actor ref in another process: it records what it is told and what it
is asked, and the test answers each ask by resolving its future. `FakeSystem` stands for the
actor system: it hands out `FakeRef`s, records death watches and runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from actorcore.core.cluster import Cluster
from actorcore.node_config import NodeEndpoints

__all__ = ["FakeRef", "FakeSystem", "cluster_of", "settle"]


class FakeRef:
    """An actor ref: `told` lists the messages told, `asks` the (message, future) pairs asked."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.actor_id = name
        self._loop = loop
        self.told: list = []
        self.asks: list[tuple[Any, asyncio.Future]] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)

    def ask(self, message: Any, timeout: float | None = None) -> asyncio.Future:
        future = self._loop.create_future()
        self.asks.append((message, future))
        return future

    def to_uri(self) -> str:
        return f"fake://{self.actor_id}"

    def asked(self, kind: type) -> list[tuple[Any, asyncio.Future]]:
        """The asks of messages of type `kind` not answered yet."""
        return [(message, future) for message, future in self.asks if type(message) is kind and not future.done()]

    def __repr__(self) -> str:
        return f"FakeRef({self.actor_id})"


class FakeSystem:
    """An actor system on the test's loop: `watched` lists the refs watched."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread_id = threading.get_ident()
        self._closing = False
        self.watched: list = []
        self.refs: dict[str, FakeRef] = {}
        self.disconnected: list[str] = []

    def ref(self, name: str) -> FakeRef:
        """The fake ref named `name` (the same one each time)."""
        ref = self.refs.get(name)
        if ref is None:
            ref = self.refs[name] = FakeRef(name, self.loop)
        return ref

    def ref_from_uri(self, uri: str) -> FakeRef:
        return self.ref(uri)

    def _watch(self, key: tuple, ref: Any) -> None:
        self.watched.append(ref)

    def is_connected(self, ref: Any) -> bool:
        return True

    def connected(self, ref: Any) -> asyncio.Future:
        future = self.loop.create_future()
        future.set_result(None)
        return future

    def disconnect_host(self, host_id: str, why: str) -> int:
        self.disconnected.append(host_id)
        return 0

    #: asks awaiting a reply (none: the fake's asks are answered by the test)
    open_asks = 0

    def spin_for(self, seconds: float) -> None:
        """A real system polls meanwhile; the fake's loop is the test's."""

    def stop_spinning(self) -> None:
        """A real system sleeps when idle again."""


def cluster_of(system: FakeSystem, resources: dict, *, nodes: dict | None = None) -> Cluster:
    """A real `Cluster` of one node "n1" with `resources` (or of `nodes`, in cluster mode)."""
    node = NodeEndpoints(node_id="n1", node="node", scheduler="scheduler", gcs="gcs", object_store="store",
                         pool="pool", resources=resources, pid=0, host_id="h1", cluster_mode=nodes is not None)
    return Cluster(system, node, nodes, 1, system.ref("scheduler"), system.ref("store"))


async def settle(rounds: int = 20) -> None:
    """Let the loop run what is ready now (callbacks, and the tasks they start) to quiescence."""
    for _ in range(rounds):
        await asyncio.sleep(0)

