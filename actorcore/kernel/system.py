"""`ActorSystem`: one per process; spawns actors, routes messages, runs death watch
(docs/architecture.md, "The actor kernel").

The system runs on one asyncio event loop: `await ActorSystem.start()` inside a running loop,
or `ActorSystem.start_in_thread()` to get one on a background thread (how drivers and
workers will host theirs). It listens on a Unix socket (same-host peers) and, when asked, on
a TCP endpoint (other hosts); see `remote/tcp_stream.py` for the choice of transport. A
system that listens needs the cluster token, whose secret every connection proves without
sending it (`remote/handshake.py`), or an explicit ``insecure=True``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._logging import get_logger
from . import address as _address
from . import current
from .actor import Actor
from .address import Address, new_system_id
from .cell import ActorCell, SupervisionHook, stopped_error
from .errors import ActorSystemError
from .loop import new_event_loop
from .messages import NORMAL, Terminated
from .ref import ActorRef, parse_uri
from .remote.connections import UdsServer
from .remote.peers import RemoteLayer
from .remote.tcp_stream import TcpServer
from .secret import ClusterSecret

if TYPE_CHECKING:
    from .remote.grpc_tls import GrpcTls

log = get_logger(__name__)

_TOMBSTONES = 10_000


class ActorSystem:
    """A process's actors: it spawns them, routes messages to them locally and remotely, and runs death watch."""

    def __init__(self, *, name: str = "actors", spin: bool = True, token: str | None = None,
                 insecure: bool = False, tls: GrpcTls | None = None) -> None:
        self.name = name
        #: the cluster secret (made from the cluster token): each side of a connection proves
        #: it holds it before anything the other sends is read, and never sends it; None in a
        #: system without a token, which accepts any peer (docs/architecture.md, "Security model")
        self.secret = ClusterSecret(token) if token else None
        #: started without a token on purpose (`insecure=True`): listens open to anyone
        self.insecure = insecure
        #: the cluster's TLS credentials: streams and transfers between hosts are encrypted
        #: with them (`remote/tls.py`)
        self.tls = tls
        #: poll briefly instead of sleeping around asks and replies (see RemoteLayer.spin);
        #: off where user threads share the GIL with the loop at any time (drivers); a worker
        #: spins while its user threads are idle (`stop_spinning` when they start)
        self.spin = spin
        self.id = new_system_id()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.address = Address(self.id, _address.HOST_ID)
        self._thread_id: int | None = None
        self._cells: dict[str, ActorCell] = {}
        self._tombstones: OrderedDict[str, Terminated] = OrderedDict()
        self._future_watchers: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._remote = RemoteLayer(self)
        self._servers: list = []
        self._closing = False
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    def current(cls) -> ActorSystem:
        """The actor system running in this process; ActorSystemError if there is none."""
        return current.get()

    @classmethod
    async def start(cls, *, name: str = "actors", tcp: str | None = None, uds: bool = True,
                    spin: bool = True, token: str | None = None, insecure: bool = False,
                    tls: GrpcTls | None = None) -> ActorSystem:
        """Start the process's actor system on the running loop.

        `tcp="127.0.0.1:0"` also opens a TCP endpoint (port 0: any free port); `uds=False`
        opens no Unix socket. A system that listens (on either) needs the cluster `token`:
        without one it raises ValueError, unless `insecure=True` (anyone who can reach its
        endpoints may then send it messages; a warning says so). With `tls` (the cluster's
        credentials) its streams to and from other hosts are TLS (see `remote/tls.py`).
        """
        _check_credentials(name, token, insecure, listens=bool(tcp or uds))
        system = cls(name=name, spin=spin, token=token, insecure=insecure, tls=tls)
        await system._start(tcp, uds)
        return system

    @classmethod
    def start_in_thread(cls, *, name: str = "actors", tcp: str | None = None, uds: bool = True,
                        spin: bool = False, token: str | None = None, insecure: bool = False,
                        tls: GrpcTls | None = None) -> ActorSystem:
        """Start the actor system on a new daemon thread with its own event loop (arguments
        as for `start`)."""
        box: dict[str, Any] = {}
        started = threading.Event()

        def run() -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)

            async def main() -> None:
                try:
                    system = await cls.start(name=name, tcp=tcp, uds=uds, spin=spin, token=token,
                                             insecure=insecure, tls=tls)
                except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for the start
                    box["error"] = exc
                    started.set()
                    return
                system._stopped = loop.create_future()
                box["system"] = system
                started.set()
                await system._stopped

            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=f"actorcore-{name}", daemon=True)
        thread.start()
        started.wait()
        if "error" in box:
            raise box["error"]
        system = box["system"]
        system._thread = thread
        return system

    async def _start(self, tcp: str | None, uds: bool) -> None:
        current.claim(self)
        try:
            self.loop = asyncio.get_running_loop()
            self._thread_id = threading.get_ident()
            uds_path = tcp_address = ""
            if uds:
                uds_path = _socket_path(self.id)
                server = UdsServer(uds_path, self._remote.accept)
                await server.start()
                self._servers.append(server)
            if tcp:
                tcp_server = TcpServer(tcp, self._remote.accept, self.tls)
                await tcp_server.start()
                self._servers.append(tcp_server)
                tcp_address = tcp_server.address
            self.address = Address(self.id, _address.HOST_ID, tcp_address, uds_path)
        except BaseException:
            await self._close_servers()
            current.release(self)
            raise

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every actor (newest first), close every connection and endpoint."""
        if self._thread is not None and threading.get_ident() != self._thread_id:
            raise ActorSystemError("use shutdown_sync() for a system running on its own thread")
        if self._closing:
            return
        self._closing = True
        for cell in reversed(list(self._cells.values())):
            cell.request_stop()
            try:
                await asyncio.wait_for(asyncio.shield(cell.termination), timeout)
            except asyncio.TimeoutError:
                log.warning("actor did not stop in time; killed", actor=cell.actor_id)
                cell.kill()
                await asyncio.wait([cell.termination], timeout=1.0)
        self._remote.close()
        await self._close_servers()
        for future in self._future_watchers.values():
            if not future.done():
                future.cancel()
        current.release(self)
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def spin_for(self, seconds: float) -> None:
        """Poll without yielding the CPU for up to `seconds` (or until `stop_spinning`), even in
        a system made with ``spin=False``: a user thread waits for a reply, needing neither the
        GIL nor the CPU meanwhile (loop thread; see RemoteLayer.spin)."""
        self._remote.spin(seconds, yielding=False)

    @property
    def open_asks(self) -> int:
        """How many asks to other processes await their reply."""
        return self._remote.open_asks

    def stop_spinning(self) -> None:
        """Sleep when idle from now on, until the next ask or reply: a user thread is about to
        run and needs the GIL, which a polling loop would keep taking (loop thread)."""
        self._remote.stop_spin()

    def shutdown_sync(self, timeout: float = 10.0) -> None:
        """Shut down a system started with `start_in_thread`, from any other thread."""
        if self._closing and self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown_in_loop(), self.loop).result(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _shutdown_in_loop(self) -> None:
        thread, self._thread = self._thread, None
        try:
            await self.shutdown()
        finally:
            self._thread = thread

    async def _close_servers(self) -> None:
        for server in self._servers:
            await server.stop()
            if isinstance(server, UdsServer) and not server.path.startswith("\0"):
                try:
                    os.unlink(server.path)
                except FileNotFoundError:
                    pass
        self._servers.clear()

    async def __aenter__(self) -> ActorSystem:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.shutdown()

    # -- actors ---------------------------------------------------------------------------

    def spawn(
        self,
        factory: type[Actor] | Callable[..., Actor],
        *args: Any,
        name: str | None = None,
        supervision: SupervisionHook | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Create an actor from `factory(*args, **kwargs)` and return its ref.

        `name` must be unique in this system; it is the actor's id (refs can be rebuilt from
        it). Without one an id is made up.
        """
        self._check_loop("spawn")
        if self._closing:
            raise ActorSystemError(f"actor system {self.name} is shutting down; cannot spawn")
        if not callable(factory):
            raise TypeError(f"spawn needs an Actor subclass or a factory, got {factory!r}")
        if isinstance(factory, type) and not issubclass(factory, Actor):
            raise TypeError(f"{factory.__qualname__} is not a subclass of actorcore Actor")
        receive = getattr(factory, "receive", None)
        if receive is not None and not asyncio.iscoroutinefunction(receive):
            raise TypeError(f"{getattr(factory, '__qualname__', factory)}.receive must be `async def`")
        if name is None:
            actor_id = f"{getattr(factory, '__name__', 'actor')}-{next(self._ids)}"
        else:
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"actor name must be a non-empty string without '/', got {name!r}")
            if name in self._cells:
                raise ValueError(f"an actor named {name!r} already exists in actor system {self.name}")
            actor_id = name
        cell = ActorCell(self, actor_id, lambda: factory(*args, **kwargs), supervision)
        self._cells[actor_id] = cell
        self._tombstones.pop(actor_id, None)
        return cell.ref

    def lookup(self, name: str) -> ActorRef | None:
        """The ref of the local actor named `name`, or None if there is none."""
        cell = self._cells.get(name)
        return cell.ref if cell is not None else None

    def cell(self, ref: ActorRef) -> ActorCell | None:
        """The cell of a local actor, or None if `ref` is remote or the actor is gone."""
        return self._cells.get(ref.actor_id) if ref._local else None

    def ref_from_uri(self, uri: str) -> ActorRef:
        """The ref a URI from `ActorRef.to_uri` names; raises ValueError if `uri` is not one."""
        address, actor_id = parse_uri(uri)
        return ActorRef(self, address, actor_id)

    def stop(self, ref: ActorRef) -> asyncio.Future:
        """Stop an actor after its current message; the future resolves with its Terminated.

        For a remote actor the future resolves once the stop was sent and its death seen.
        """
        self._check_loop("stop")
        if ref._local:
            cell = self._cells.get(ref.actor_id)
            if cell is None:
                return self._already_dead(ref)
            return cell.request_stop()
        future = self.watch(ref)
        self._remote.stop(ref)
        return future

    def _stop_ref(self, ref: ActorRef) -> None:
        self.stop(ref)

    def disconnect_host(self, host_id: str, why: str) -> int:
        """Treat every peer with host identity `host_id` as lost (say, the GCS declared that
        node dead while its connections still look open): their asks fail with
        `PeerLostError` and their actors' watchers get `Terminated`. Returns how many."""
        lost = [peer for peer in self._remote.peers.values() if peer.address.host_id == host_id]
        for peer in lost:
            self._remote.peer_lost(peer, why)
        return len(lost)

    def is_connected(self, ref: ActorRef) -> bool:
        """Whether a message to `ref` leaves this process at once (local, or its peer is up)."""
        if ref._local:
            return True
        peer = self._remote.peers.get(ref.address.system_id)
        return peer is not None and peer.connection is not None and not peer.lost

    def connected(self, ref: ActorRef) -> asyncio.Future:
        """Resolves once messages to `ref` leave this process at once (its peer is connected)."""
        if ref._local:
            future = self.loop.create_future()
            future.set_result(None)
            return future
        return self._remote.peer_for(ref.address).when_up()

    # -- death watch ----------------------------------------------------------------------

    def watch(self, ref: ActorRef) -> asyncio.Future:
        """A future that resolves with `Terminated` once `ref` ends (at once if it has)."""
        self._check_loop("watch")
        future = self.loop.create_future()
        token = id(future)
        self._future_watchers[token] = future
        self._watch(("future", token), ref)
        return future

    def _watch(self, key: tuple, ref: ActorRef) -> None:
        if not ref._local:
            self._remote.watch(key, ref)
            return
        cell = self._cells.get(ref.actor_id)
        if cell is None:
            self._deliver(key, self._tombstone(ref))
        else:
            cell.watchers[key] = None

    def _unwatch(self, key: tuple, ref: ActorRef) -> None:
        if not ref._local:
            self._remote.unwatch(key, ref)
            return
        cell = self._cells.get(ref.actor_id)
        if cell is not None:
            cell.watchers.pop(key, None)

    def _deliver(self, key: tuple, terminated: Terminated) -> None:
        kind = key[0]
        if kind == "actor":
            cell = self._cells.get(key[1])
            if cell is not None:
                cell.enqueue(terminated, None, None)
        elif kind == "future":
            future = self._future_watchers.pop(key[1], None)
            if future is not None and not future.done():
                future.set_result(terminated)
        elif kind == "remote":
            self._remote.send_terminated(key[1], terminated)

    def _add_remote_watcher(self, system_id: str, actor_id: str) -> None:
        cell = self._cells.get(actor_id)
        key = ("remote", system_id)
        if cell is None:
            self._deliver(key, self._tombstone(ActorRef(self, self.address, actor_id)))
        else:
            cell.watchers[key] = None

    def _remove_remote_watcher(self, system_id: str, actor_id: str) -> None:
        cell = self._cells.get(actor_id)
        if cell is not None:
            cell.watchers.pop(("remote", system_id), None)

    def _forget_remote_watchers(self, system_id: str) -> None:
        key = ("remote", system_id)
        for cell in self._cells.values():
            cell.watchers.pop(key, None)

    def _tombstone(self, ref: ActorRef) -> Terminated:
        return self._tombstones.get(ref.actor_id) or Terminated(ref, NORMAL)

    def _already_dead(self, ref: ActorRef) -> asyncio.Future:
        future = self.loop.create_future()
        future.set_result(self._tombstone(ref))
        return future

    def _on_cell_terminated(self, cell: ActorCell, terminated: Terminated) -> None:
        if self._cells.get(cell.actor_id) is cell:
            del self._cells[cell.actor_id]
        self._tombstones[cell.actor_id] = terminated
        if len(self._tombstones) > _TOMBSTONES:
            self._tombstones.popitem(last=False)
        watchers, cell.watchers = cell.watchers, {}
        for key in watchers:
            self._deliver(key, terminated)

    # -- messaging internals --------------------------------------------------------------

    def _ask_local(self, ref: ActorRef, message: Any, sender: ActorRef | None, timeout: float | None):
        loop = self.loop
        future = loop.create_future()
        cell = self._cells.get(ref.actor_id)
        if cell is None:
            future.set_exception(stopped_error(ref, message))
            return future
        if timeout is not None:
            timer = loop.call_later(timeout, _expire_ask, future, ref, message, timeout)
            future.add_done_callback(lambda _: timer.cancel())
        cell.enqueue(message, sender, future)
        return future

    def _dead_letter(self, ref: ActorRef, message: Any, reply=None) -> None:
        if reply is not None:
            if not reply.done():
                reply.set_exception(stopped_error(ref, message))
            return
        if not isinstance(message, Terminated):
            log.debug("dead letter", actor=ref.actor_id, message_type=type(message).__qualname__)

    def _call_threadsafe(self, callback: Callable[[], None]) -> None:
        if self._thread_id == threading.get_ident():
            callback()
        elif self.loop is None or self.loop.is_closed():
            raise ActorSystemError(f"actor system {self.name} is not running")
        else:
            self.loop.call_soon_threadsafe(callback)

    def _check_loop(self, what: str) -> None:
        if self.loop is None:
            raise ActorSystemError(f"actor system {self.name} is not started")
        if self._thread_id != threading.get_ident():
            raise ActorSystemError(
                f"{what} must be called in the actor system's event loop thread "
                "(use system.run(coro) from other threads)"
            )

    def ask_sync(self, ref: ActorRef, message: Any, timeout: float | None = 30.0) -> Any:
        """`ref.ask(message, timeout)` from a thread other than the system's; blocks for the reply."""

        async def ask() -> Any:
            return await ref.ask(message, timeout)

        return self.run(ask())

    def run(self, coroutine, timeout: float | None = None) -> Any:
        """Run a coroutine on the system's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def __repr__(self) -> str:
        return f"ActorSystem({self.name}, {self.address})"


def _check_credentials(name: str, token: str | None, insecure: bool, listens: bool) -> None:
    """A system that listens needs the cluster token, or an explicit `insecure=True`."""
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    if token or not listens:
        return
    if not insecure:
        raise ValueError(
            f"actor system {name!r} would listen without a cluster token, open to anyone who can reach it: "
            "pass token=... (every process of the cluster the same, e.g. from "
            "actorcore.cluster_files.new_token()), or insecure=True to accept any peer on purpose"
        )
    log.warning("actor system started insecure: it accepts messages from any peer, without a cluster token",
                system=name)


def _socket_path(system_id: str) -> str:
    """Linux: an abstract-namespace socket (no file, gone with the process even after kill -9);
    elsewhere a file in the temp dir, removed at shutdown."""
    if sys.platform.startswith("linux"):
        return f"\0actorcore-{system_id}"
    return os.path.join(tempfile.gettempdir(), f"actorcore-{system_id}.sock")


def _expire_ask(future: asyncio.Future, ref: ActorRef, message: Any, timeout: float) -> None:
    from .errors import AskTimeoutError

    if not future.done():
        future.set_exception(AskTimeoutError(
            f"ask to actor {ref.actor_id} timed out after {timeout:g} s waiting for a reply to "
            f"{type(message).__qualname__}"
        ))


__all__ = ["ActorSystem"]
