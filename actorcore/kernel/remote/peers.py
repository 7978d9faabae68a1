"""Peers: one stream per pair of actor systems, batching, asks and watches across processes.

Envelopes to one peer queue in its outbox in send order; one writer task per peer drains
the outbox into frames of up to `MAX_BATCH` envelopes (or `MAX_BATCH_BYTES`), so a burst of
tells costs one write per batch, while a lone message leaves at the next loop iteration.
Order per sender is kept because every envelope to a peer goes through one outbox and one
connection, chosen once per peer.

Every connection starts with the handshake of `handshake.py` (each side proves it holds the
cluster secret; nothing else is sent or read before); at most `MAX_PENDING_HANDSHAKES`
accepted connections may be in it at once, each for at most `HANDSHAKE_TIMEOUT` seconds.

When a peer's connection ends, the peer is lost: every ask pending on it fails with
`PeerLostError`, every watcher of its actors gets `Terminated(ref, "peer_lost")`, and the
next send to that address connects afresh.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from ..._logging import get_logger
from ..._proto import kernel_pb2 as pb
from ...env import MAX_FRAME_ENV
from .. import codec
from ..address import Address
from ..errors import AskTimeoutError, PeerLostError
from ..messages import PEER_LOST, Terminated
from ..ref import ActorRef
from .connections import MAX_FRAME_BYTES, MessageTooLargeError, UdsConnection
from .handshake import ACCEPTING, CONNECTING, hello_problem, make_proof, new_nonce, proof_valid
from .tcp_stream import TcpConnection

if TYPE_CHECKING:
    from ..system import ActorSystem

log = get_logger(__name__)

MAX_BATCH = 2000
MAX_BATCH_BYTES = 1 << 20
HANDSHAKE_TIMEOUT = 10.0
#: Accepted connections whose handshake may be pending at once; more are closed at once. Each
#: holds a few KiB at most; a legitimate handshake ends within one round trip, so only a burst
#: of hundreds of processes connecting at the same moment comes near it.
MAX_PENDING_HANDSHAKES = 256
#: The largest message payload: a frame holds it and its envelope's few fields.
MAX_PAYLOAD_BYTES = MAX_FRAME_BYTES - (64 << 10)
SPIN_SECONDS = 0.0003

TELL, REPLY, REPLY_ERROR = pb.TELL, pb.REPLY, pb.REPLY_ERROR
WATCH, UNWATCH, TERMINATED, STOP = pb.WATCH, pb.UNWATCH, pb.TERMINATED, pb.STOP
Envelope = pb.Envelope


class RemoteReply:
    """Stands in for a local future when the asker is in another process."""

    __slots__ = ("peer", "ask_id")

    def __init__(self, peer: Peer, ask_id: int) -> None:
        self.peer = peer
        self.ask_id = ask_id

    def done(self) -> bool:
        """True once the asker is unreachable: a reply would go nowhere."""
        return self.peer.lost

    def set_result(self, value: Any) -> None:
        """Send `value` back to the asker (an unpicklable value goes back as the SerializationError)."""
        try:
            payload = codec.dumps(value, what=f"the reply to ask {self.ask_id}")
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise _too_large(f"the {type(value).__qualname__} reply to ask {self.ask_id}", len(payload))
        except codec.SerializationError as exc:
            self.set_exception(exc)
            return
        self.peer.send(Envelope(kind=REPLY, ask_id=self.ask_id, payload=payload))
        if self.peer.layer.system.spin:
            self.peer.layer.spin()

    def set_exception(self, error: BaseException) -> None:
        """Send `error` back to the asker, to be raised there."""
        self.peer.send(Envelope(kind=REPLY_ERROR, ask_id=self.ask_id, payload=codec.dumps_error(error)))


class Peer:
    """Another actor system: its outbox, the asks pending on it and our watches on its actors."""

    def __init__(self, layer: RemoteLayer, address: Address) -> None:
        self.layer = layer
        self.address = address
        self.outbox: list[pb.Envelope] = []
        self.connection = None
        self.links: list[Link] = []
        self.lost = False
        #: ask_id -> (future, timer handle, target ref, message type name)
        self.pending: dict[int, tuple] = {}
        #: our watches on its actors: actor_id -> {watcher key}
        self.watched: dict[str, dict[tuple, None]] = {}
        self.connect_task: asyncio.Task | None = None
        self._flush_scheduled = False
        self._up_waiters: list[asyncio.Future] = []

    def send(self, envelope: pb.Envelope) -> None:
        """Queue an envelope to this peer; the first of a loop iteration leaves at once, the rest in one batch."""
        if self.lost:
            return
        if not self._flush_scheduled and self.connection is not None:
            # The first envelope of a loop iteration leaves at once (a lone ask or reply
            # saves a loop iteration: measured ~25 µs of a ~245 µs round trip); the rest of
            # the iteration's envelopes wait for one batched flush at its end.
            self._flush_scheduled = True
            self.layer.system.loop.call_soon(self._flush)
            self.connection.send(pb.Frame(batch=pb.EnvelopeBatch(envelopes=(envelope,))))
            return
        self.outbox.append(envelope)

    def attach(self, link: Link) -> None:
        """A link to this peer is up; the first one carries everything we send to it."""
        self.links.append(link)
        if self.connection is None:
            self.connection = link.connection
            self._release_up_waiters()
            if self.outbox and not self._flush_scheduled:
                self._flush_scheduled = True
                self.layer.system.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox = self.outbox
        if not outbox or self.lost:
            return
        send = self.connection.send
        while outbox:
            if len(outbox) <= MAX_BATCH and sum(len(e.payload) for e in outbox) <= MAX_BATCH_BYTES:
                batch, outbox = outbox, []
                self.outbox = outbox
            else:
                batch = _take_batch(outbox)
            send(pb.Frame(batch=pb.EnvelopeBatch(envelopes=batch)))

    def when_up(self) -> asyncio.Future:
        """Resolves once this peer's connection is up (or it is lost): what was sent is on the wire."""
        future = self.layer.system.loop.create_future()
        if self.connection is not None or self.lost:
            future.set_result(None)
        else:
            self._up_waiters.append(future)
        return future

    def _release_up_waiters(self) -> None:
        waiters, self._up_waiters = self._up_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Mark the peer lost, stop connecting to it and close its connections."""
        self._release_up_waiters()
        self.lost = True
        if self.connect_task is not None and self.connect_task is not asyncio.current_task():
            self.connect_task.cancel()
        for link in self.links:
            link.connection.close()


class Link:
    """One connection, from its handshake on (see `handshake`): a `Hello` and a `Proof` each
    way, then batches of envelopes; nothing is dispatched, and nothing is sent but the
    handshake, before the other side's proof verified."""

    __slots__ = ("layer", "connection", "peer", "expected", "hello_seen", "own_hello", "their_hello", "_state")

    def __init__(self, layer: RemoteLayer, connection, expected: Peer | None) -> None:
        self.layer = layer
        self.connection = connection
        self.peer: Peer | None = None
        self.expected = expected  # set on the connecting side
        #: resolves once the other side proved it holds the cluster secret
        self.hello_seen: asyncio.Future = layer.system.loop.create_future()
        # Nobody waits for an accepted link's handshake: its failure is not an error to report.
        self.hello_seen.add_done_callback(_retrieve)
        self.own_hello = layer.hello()
        self.their_hello: pb.Hello | None = None
        self._state = _AWAIT_HELLO
        connection.start(self.on_frame, self.on_closed)

    @property
    def accepted(self) -> bool:
        """True on the accepting side of the connection."""
        return self.expected is None

    def on_frame(self, frame: pb.Frame) -> None:
        """Run the handshake on the first frames; dispatch the batches that follow it."""
        state = self._state
        if state is _UP:
            if frame.HasField("batch"):
                self.layer.dispatch(self.peer, frame.batch.envelopes)
            return
        if state is _AWAIT_HELLO:
            if not frame.HasField("hello"):
                self._fail("the first frame was not a Hello")
                return
            problem = hello_problem(frame.hello)
            if problem is not None:
                self._fail(f"its Hello is malformed: {problem}")
                return
            self.their_hello = frame.hello
            self._state = _AWAIT_PROOF
            if self.accepted:
                self.connection.send(pb.Frame(hello=self.own_hello))
                self.connection.send(self._proof(ACCEPTING))
        elif state is _AWAIT_PROOF:
            if not frame.HasField("proof"):
                self._fail("the frame after its Hello was not a Proof")
                return
            role = CONNECTING if self.accepted else ACCEPTING
            connecting, accepting = self._transcript()
            secret = self.layer.system.secret
            if secret is None and frame.proof.mac:
                self._fail("it requires the cluster token, and this actor system was started without one")
                return
            if not proof_valid(secret, role, frame.proof, connecting, accepting):
                self._fail("it could not prove it holds this cluster's token")
                return
            if not self.accepted:
                expected_id = self.expected.address.system_id
                if self.their_hello.system_id != expected_id:
                    self._fail(f"another actor system ({self.their_hello.system_id}) now listens there: "
                               f"{expected_id} is gone")
                    return
                self.connection.send(self._proof(CONNECTING))
            self._up()

    def _transcript(self) -> tuple[pb.Hello, pb.Hello]:
        if self.accepted:
            return self.their_hello, self.own_hello
        return self.own_hello, self.their_hello

    def _proof(self, role: bytes) -> pb.Frame:
        connecting, accepting = self._transcript()
        return make_proof(self.layer.system.secret, role, connecting, accepting)

    def _up(self) -> None:
        hello = self.their_hello
        address = Address(hello.system_id, hello.host_id, hello.tcp_address, hello.uds_path)
        if self.accepted:
            self.layer.handshake_done(self)
            peer = self.layer.peer_for(address, connect=False)
        else:
            peer = self.expected
        self._state = _UP
        self.connection.authenticated()
        self.peer = peer
        peer.attach(self)
        if not self.hello_seen.done():
            self.hello_seen.set_result(None)

    def _fail(self, why: str) -> None:
        if self._state is _FAILED:
            return
        self._state = _FAILED
        if self.accepted:
            # Nothing the other side sent is logged: it has not proved anything.
            log.warning("rejected a connection", why=why)
            self.layer.handshake_done(self)
        if not self.hello_seen.done():
            self.hello_seen.set_exception(ConnectionError(f"the other side failed the handshake: {why}"))
        self.connection.close()

    def on_closed(self) -> None:
        """The connection ended: fail the handshake if it was pending, else lose the peer."""
        if self.accepted and self._state is not _UP:
            self.layer.handshake_done(self)
        self._state = _FAILED
        if not self.hello_seen.done():
            self.hello_seen.set_exception(ConnectionError(
                "it closed the connection during the handshake (a wrong or missing cluster token?)"))
        if self.peer is not None:
            self.layer.peer_lost(self.peer, "connection closed")


# Link states: the handshake's steps, then up or failed.
_AWAIT_HELLO, _AWAIT_PROOF, _UP, _FAILED = "await hello", "await proof", "up", "failed"


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _take_batch(outbox: list) -> list:
    size = 0
    for count, envelope in enumerate(outbox):
        size += len(envelope.payload)
        if count and (count >= MAX_BATCH or size > MAX_BATCH_BYTES):
            break
    else:
        count = len(outbox)
    batch = outbox[:count]
    del outbox[:count]
    return batch


class RemoteLayer:
    """The actor system's view of every other actor system it talks to."""

    def __init__(self, system: ActorSystem) -> None:
        self.system = system
        self.peers: dict[str, Peer] = {}
        self._next_ask_id = 0
        self._spinning = False
        self._spin_deadline = 0.0
        self._pure_spin_deadline = 0.0  # until then spin steps do not yield the CPU
        #: asks sent to other processes that await their reply
        self.open_asks = 0
        self._handshaking: set[Link] = set()  # accepted links whose handshake is pending
        self._flood_logged = False

    # -- sending --------------------------------------------------------------------------

    def peer_for(self, address: Address, connect: bool = True) -> Peer:
        """The peer at `address`, made (and, if `connect`, connected to) on first use."""
        peer = self.peers.get(address.system_id)
        if peer is None:
            peer = self.peers[address.system_id] = Peer(self, address)
            if connect:
                peer.connect_task = self.system.loop.create_task(self._connect(peer))
        return peer

    def encode(self, ref: ActorRef, message: Any) -> bytes:
        """Pickle a message to `ref`; raises SerializationError naming the message and the
        actor (`MessageTooLargeError` if it does not fit in a frame)."""
        what = f"a {type(message).__qualname__} message to actor {ref.actor_id}"
        payload = codec.dumps(message, what=what)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _too_large(what, len(payload))
        return payload

    def tell(self, ref: ActorRef, message: Any, sender: ActorRef | None) -> None:
        """Send `message` to the remote actor `ref` without waiting."""
        self.tell_encoded(ref, self.encode(ref, message), sender)

    def tell_encoded(self, ref: ActorRef, payload: bytes, sender: ActorRef | None) -> None:
        """Send a message already pickled by `encode` (one pickle for many targets)."""
        self.peer_for(ref.address).send(
            Envelope(kind=TELL, target=ref.actor_id, sender=_local_id(self.system, sender), payload=payload)
        )

    def ask(self, ref: ActorRef, message: Any, sender: ActorRef | None, timeout: float | None) -> asyncio.Future:
        """Send `message` to `ref`; the future resolves with its reply, or fails on timeout or a lost peer."""
        loop = self.system.loop
        future = loop.create_future()
        payload = self.encode(ref, message)
        peer = self.peer_for(ref.address)
        if peer.lost:
            future.set_exception(PeerLostError(f"actor {ref.actor_id} is unreachable: its process is gone"))
            return future
        self._next_ask_id += 1
        ask_id = self._next_ask_id
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self._ask_expired, peer, ask_id, timeout)
        peer.pending[ask_id] = (future, timer, ref, type(message).__qualname__)
        self.open_asks += 1
        if self.system.spin:
            self.spin()
        peer.send(Envelope(kind=TELL, target=ref.actor_id, sender=_local_id(self.system, sender),
                           ask_id=ask_id, payload=payload))
        return future

    def spin(self, seconds: float = SPIN_SECONDS, *, yielding: bool = True) -> None:
        """Keep the loop polling (not sleeping) for `seconds` (SPIN_SECONDS after an ask or a reply).

        On virtual machines a vCPU that goes idle costs ~50-80 µs to wake; a reply (or a
        caller's next ask) that comes within SPIN_SECONDS is then read at once. The loop still
        serves everything else: each spin step is one loop iteration with a zero-timeout poll.
        Measured on the 2-core dev VM (benchmarks/kernel.py): sequential ask median 205 µs ->
        37-45 µs with both sides spinning. It costs CPU and, in a process whose user threads
        share the GIL with the loop, their time: such systems turn it off (`spin=False`), or
        spin only while those threads wait (`ActorSystem.spin_for`, `stop_spinning`).

        Each step yields the CPU (`sched_yield`) to the machine's other runnable threads, which
        a spinning loop would otherwise slow (measured: actor pools at half speed on 2 cores);
        `yielding=False` when this process's user thread waits for the reply and nothing else
        of the process needs the CPU (`ActorSystem.spin_for`).
        """
        loop = self.system.loop
        now = loop.time()
        if not yielding:
            self._pure_spin_deadline = max(self._pure_spin_deadline, now + seconds)
        self._spin_deadline = max(self._spin_deadline, now + seconds)
        if self._spinning:
            return
        self._spinning = True

        def step() -> None:
            now = loop.time()
            if now < self._spin_deadline:
                if now >= self._pure_spin_deadline:
                    os.sched_yield()
                loop.call_soon(step)
            else:
                self._spinning = False

        loop.call_soon(step)

    def stop_spin(self) -> None:
        """End the current spin (see `spin`): the loop sleeps once its next poll finds nothing."""
        self._spin_deadline = self._pure_spin_deadline = 0.0

    def _ask_expired(self, peer: Peer, ask_id: int, timeout: float) -> None:
        entry = peer.pending.pop(ask_id, None)
        self.open_asks -= entry is not None
        if entry is not None and not entry[0].done():
            _, _, ref, type_name = entry
            entry[0].set_exception(AskTimeoutError(
                f"ask to actor {ref.actor_id} timed out after {timeout:g} s waiting for a reply to {type_name}"
            ))

    def watch(self, key: tuple, ref: ActorRef) -> None:
        """Deliver `Terminated(ref, ...)` to watcher `key` once the remote actor `ref` ends or its peer is lost."""
        peer = self.peer_for(ref.address)
        if peer.lost:
            self.system._deliver(key, Terminated(ref, PEER_LOST))
            return
        watchers = peer.watched.setdefault(ref.actor_id, {})
        if key in watchers:
            return
        watchers[key] = None
        if len(watchers) == 1:
            peer.send(Envelope(kind=WATCH, target=ref.actor_id, sender=self.system.id))

    def unwatch(self, key: tuple, ref: ActorRef) -> None:
        """Stop watching `ref` for watcher `key`; the peer is told once nobody here watches it."""
        peer = self.peers.get(ref.address.system_id)
        if peer is None:
            return
        watchers = peer.watched.get(ref.actor_id)
        if watchers and watchers.pop(key, 0) is None and not watchers:
            del peer.watched[ref.actor_id]
            peer.send(Envelope(kind=UNWATCH, target=ref.actor_id, sender=self.system.id))

    def stop(self, ref: ActorRef) -> None:
        """Ask the remote actor `ref` to stop after its current message."""
        self.peer_for(ref.address).send(Envelope(kind=STOP, target=ref.actor_id))

    def send_terminated(self, system_id: str, terminated: Terminated) -> None:
        """Tell the system `system_id`, which watches one of our actors, that it has ended."""
        peer = self.peers.get(system_id)
        if peer is not None and not peer.lost:
            try:
                payload = codec.dumps((terminated.reason, terminated.error), what="a Terminated reason")
            except codec.SerializationError:
                payload = codec.dumps((terminated.reason, codec.RemoteError(repr(terminated.error))), what="")
            peer.send(Envelope(kind=TERMINATED, sender=terminated.ref.actor_id, payload=payload))

    # -- connections ----------------------------------------------------------------------

    def hello(self) -> pb.Hello:
        """Our `Hello` for a new connection: who we are, where we listen, and a fresh nonce."""
        a = self.system.address
        return pb.Hello(system_id=a.system_id, host_id=a.host_id, tcp_address=a.tcp, uds_path=a.uds,
                        nonce=new_nonce())

    async def _connect(self, peer: Peer) -> None:
        address = peer.address
        link = None
        try:
            if address.uds and address.same_host:
                connection = await UdsConnection.open(address.uds)
            elif address.tcp:
                connection = await TcpConnection.open(address.tcp, self.system.tls)
            else:
                raise ConnectionError("it has no endpoint reachable from this host")
            link = Link(self, connection, expected=peer)
            connection.send(pb.Frame(hello=link.own_hello))
            await asyncio.wait_for(asyncio.shield(link.hello_seen), HANDSHAKE_TIMEOUT)
        except asyncio.CancelledError:
            if link is not None:
                link.connection.close()
            raise
        except Exception as exc:  # noqa: BLE001 - every failure means the peer is unreachable
            if link is not None:
                link.connection.close()
            log.debug("cannot reach peer", peer=str(address), error=repr(exc))
            self.peer_lost(peer, f"cannot reach it: {exc}")

    def accept(self, connection) -> None:
        """An inbound connection: its handshake binds it to a peer (see `Link`). Over
        `MAX_PENDING_HANDSHAKES` at once, it is closed at once; one whose handshake has not
        succeeded within `HANDSHAKE_TIMEOUT` is closed then."""
        if len(self._handshaking) >= MAX_PENDING_HANDSHAKES:
            connection.close()
            if not self._flood_logged:
                self._flood_logged = True
                log.warning("refused connections: too many handshakes pending", limit=MAX_PENDING_HANDSHAKES)
            return
        link = Link(self, connection, expected=None)
        self._handshaking.add(link)
        self.system.loop.call_later(HANDSHAKE_TIMEOUT, _drop_if_silent, link)

    def handshake_done(self, link: Link) -> None:
        """An accepted link's handshake ended (succeeded, failed or closed)."""
        self._handshaking.discard(link)
        if not self._handshaking:
            self._flood_logged = False

    def peer_lost(self, peer: Peer, why: str) -> None:
        """Forget `peer`: its pending asks fail, its queued messages drop, watchers of its actors get Terminated."""
        if peer.lost:
            return
        if self.peers.get(peer.address.system_id) is peer:
            del self.peers[peer.address.system_id]
        peer.close()
        if self.system._closing:
            why = "the actor system shut down"
        dropped = len(peer.outbox)
        peer.outbox.clear()
        if dropped:
            log.info("messages to a lost peer were dropped", peer=str(peer.address), count=dropped, why=why)
        pending, peer.pending = peer.pending, {}
        self.open_asks -= len(pending)
        for future, timer, ref, type_name in pending.values():
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(PeerLostError(
                    f"actor {ref.actor_id} at {peer.address} is unreachable ({why}); "
                    f"no reply to {type_name} will come"
                ))
        watched, peer.watched = peer.watched, {}
        for actor_id, watchers in watched.items():
            ref = ActorRef(self.system, peer.address, actor_id)
            for key in watchers:
                self.system._deliver(key, Terminated(ref, PEER_LOST))
        self.system._forget_remote_watchers(peer.address.system_id)

    def close(self) -> None:
        """Lose every peer (the actor system is shutting down)."""
        for peer in list(self.peers.values()):
            self.peer_lost(peer, "the actor system shut down")

    # -- receiving ------------------------------------------------------------------------

    def dispatch(self, peer: Peer, envelopes) -> None:
        """Act on a batch of envelopes received from `peer`: messages, replies, watches, stops."""
        system = self.system
        cells = system._cells
        for envelope in envelopes:
            kind = envelope.kind
            if kind == TELL:
                ask_id = envelope.ask_id
                reply = RemoteReply(peer, ask_id) if ask_id else None
                try:
                    message = codec.loads(envelope.payload, what=f"a message to actor {envelope.target}")
                except codec.SerializationError as exc:
                    if reply is not None:
                        reply.set_exception(exc)
                    else:
                        log.error("dropped a message that cannot be unpickled", error=str(exc))
                    continue
                sender = ActorRef(system, peer.address, envelope.sender) if envelope.sender else None
                cell = cells.get(envelope.target)
                if cell is not None:
                    cell.enqueue(message, sender, reply)
                else:
                    system._dead_letter(ActorRef(system, system.address, envelope.target), message, reply)
            elif kind in (REPLY, REPLY_ERROR):
                entry = peer.pending.pop(envelope.ask_id, None)
                self.open_asks -= entry is not None
                if entry is None:
                    continue
                future, timer, ref, type_name = entry
                if timer is not None:
                    timer.cancel()
                if future.done():
                    continue
                try:
                    value = codec.loads(envelope.payload, what=f"the reply of actor {ref.actor_id} to {type_name}")
                except codec.SerializationError as exc:
                    future.set_exception(exc)
                    continue
                if kind == REPLY:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            elif kind == WATCH:
                system._add_remote_watcher(peer.address.system_id, envelope.target)
            elif kind == UNWATCH:
                system._remove_remote_watcher(peer.address.system_id, envelope.target)
            elif kind == TERMINATED:
                watchers = peer.watched.pop(envelope.sender, None)
                if watchers:
                    reason, error = codec.loads(envelope.payload, what="a Terminated reason")
                    ref = ActorRef(system, peer.address, envelope.sender)
                    for key in watchers:
                        system._deliver(key, Terminated(ref, reason, error))
            elif kind == STOP:
                cell = cells.get(envelope.target)
                if cell is not None:
                    cell.request_stop()


def _too_large(what: str, size: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"{what} is {size} bytes pickled, over the {MAX_PAYLOAD_BYTES}-byte limit of a message between "
        f"processes; pass large values through the object store (put) instead, or raise the frame "
        f"limit {MAX_FRAME_ENV} (bytes) in every process of the cluster"
    )


def _drop_if_silent(link: Link) -> None:
    if link.peer is None:
        link._fail(f"its handshake did not finish within {HANDSHAKE_TIMEOUT:g} s")


def _local_id(system: ActorSystem, sender: ActorRef | None) -> str:
    if sender is None or not sender._local:
        return ""
    return sender.actor_id
