"""The kernel across real processes: order, ask, death watch, errors, over both transports."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from actorcore.kernel import (
    Actor,
    ActorStoppedError,
    AskTimeoutError,
    PeerLostError,
    SerializationError,
)

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = ["uds", "tcp"]


class Inbox(Actor):
    """Queues what it is told; `("watch", ref)` watches `ref`."""

    def __init__(self, received: asyncio.Queue) -> None:
        self.received = received

    async def receive(self, message):
        if isinstance(message, tuple) and message[0] == "watch":
            self.context.watch(message[1])
            return "watching"
        self.received.put_nowait(message)
        return None


@pytest.mark.parametrize("role", TRANSPORTS)
async def test_100k_tells_arrive_complete_and_in_order(system, peers, role):
    peer = await peers(role)
    ref = system.ref_from_uri(peer.uris[0])
    for i in range(100_000):
        ref.tell(i)
    count, in_order = await ref.ask(("count",), timeout=60)
    assert (count, in_order) == (100_000, True)


@pytest.mark.parametrize("role", TRANSPORTS)
async def test_ask_round_trip_and_remote_error(system, peers, role):
    peer = await peers(role)
    ref = system.ref_from_uri(peer.uris[0])
    assert await ref.ask(("echo", {"a": [1, 2]})) == {"a": [1, 2]}
    assert await ref.ask(("pid",)) == peer.pid
    with pytest.raises(ValueError, match="unexpected message"):
        await ref.ask(("nonsense",))
    assert await ref.ask(("echo", 3)) == 3  # the remote actor carries on after an error


async def test_remote_ask_timeout_names_actor_and_message_type(system, peers):
    peer = await peers()
    ref = system.ref_from_uri(peer.uris[0])
    with pytest.raises(AskTimeoutError, match=r"collector.*0\.3 s.*tuple"):
        await ref.ask(("sleep",), timeout=0.3)


@pytest.mark.parametrize("role", TRANSPORTS)
async def test_kill_9_of_peer_is_terminated_for_watchers_and_fails_pending_asks(system, peers, role):
    peer = await peers(role)
    first, second = (system.ref_from_uri(u) for u in (await peers("two" + role)).uris)
    ref = system.ref_from_uri(peer.uris[0])
    received: asyncio.Queue = asyncio.Queue()
    watcher = system.spawn(Inbox, received)
    await watcher.ask(("watch", first))
    await watcher.ask(("watch", second))
    future_watch = system.watch(first)
    pending = first.ask(("sleep",), timeout=None)
    await ref.ask(("echo", 0))
    victim_pid = await second.ask(("pid",))
    os.kill(victim_pid, signal.SIGKILL)
    terminated = await asyncio.wait_for(future_watch, 10)
    assert terminated.reason == "peer_lost" and terminated.ref == first
    with pytest.raises(PeerLostError, match="unreachable"):
        await asyncio.wait_for(pending, 10)
    got = {await asyncio.wait_for(received.get(), 10) for _ in range(2)}
    assert {t.ref for t in got} == {first, second}
    # a peer that is still alive is unaffected
    assert await ref.ask(("echo", 5)) == 5


async def test_ask_on_a_stopped_remote_actor_raises_quickly(system, peers):
    peer = await peers()
    ref = system.ref_from_uri(peer.uris[0])
    terminated = await asyncio.wait_for(system.stop(ref), 10)
    assert terminated.reason == "normal"
    started = time.monotonic()
    with pytest.raises(ActorStoppedError, match="collector"):
        await ref.ask(("echo", 1), timeout=10)
    assert time.monotonic() - started < 5  # well before the ask's timeout
    # watching it now fires at once (it is already dead)
    assert (await asyncio.wait_for(system.watch(ref), 10)).ref == ref


async def test_unpicklable_message_error_names_its_type(system, peers):
    peer = await peers()
    ref = system.ref_from_uri(peer.uris[0])
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="lock"):
        ref.tell(("echo", lock))
    with pytest.raises(SerializationError, match="tuple"):
        await ref.ask(("echo", lock))
    assert await ref.ask(("echo", "still fine")) == "still fine"


async def test_refs_travel_inside_messages_and_replies_come_back(system, peers):
    peer = await peers()
    ref = system.ref_from_uri(peer.uris[0])
    received: asyncio.Queue = asyncio.Queue()
    me = system.spawn(Inbox, received)
    ref.tell(("tell_back", me))
    assert await asyncio.wait_for(received.get(), 10) == ("pong", peer.pid)


async def test_unreachable_peer_fails_asks_and_watches(system):
    ghost = system.ref_from_uri(
        "actorcore://ghost-1/nobody?host=" + system.address.host_id + "&tcp=&uds=/tmp/actorcore-no-such.sock"
    )
    with pytest.raises(PeerLostError, match="nobody"):
        await asyncio.wait_for(ghost.ask("hi"), 10)
    assert (await asyncio.wait_for(system.watch(ghost), 10)).reason == "peer_lost"
