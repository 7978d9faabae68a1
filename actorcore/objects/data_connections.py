"""Data connections of object transfers: the bytes of one range of an object over a TCP
connection of their own, sent from the source's memory and received straight into the
destination (docs/architecture.md, "Object transfer between nodes").

gRPC stays the control plane: a puller asks for a range with ``ObjectTransfer.Lend``, a call
that carries its proof of the cluster secret like every other. The serving node pins the
object's bytes and answers with a `Loan`: a one-time random ticket (`TICKET_BYTES`) and the
port of its `DataEndpoint`. The puller connects there (TLS with the cluster's certificate
between hosts, by the rule of `grpc_tls.wants_tls` that the gRPC endpoint follows, where
`transfer.DATA_OVER_TLS` chooses data connections over TLS at all) and sends
the ticket; nothing else is read, and nothing sent, before the ticket is checked. A ticket
is valid for one connection, for `TICKET_SECONDS`; an unknown, used or expired one closes
the connection. The node then sends the range as is, followed by its CRC-32C (4 bytes,
big-endian), and closes. The CRC is computed and checked only where the bytes cross a network
unprotected: not over TLS (its records are authenticated already), and not over loopback
(the bytes never leave the kernel's memory; `CHECKSUM_ON_LOOPBACK`); elsewhere the trailer is
0. Both ends decide by the connection's own local address, so they always agree.

Both ends move the bytes in threads with blocking sockets: ``sendall`` of slices of the
source's view, ``recv_into`` slices of the destination, so that the only copies are the
kernel's two and the node's event loop is free meanwhile. A connection that sends or
receives nothing for the pull's timeout fails; a puller that gives up shuts its socket down,
which ends its thread's ``recv_into`` at once, and waits for the thread before it returns, so
nothing writes into the destination afterwards.

The checksum is computed over memory views, in the receiving thread, one `DATA_CHUNK`
while it is still in the cache: google-crc32c's Python API takes ``bytes`` only, so
`crc32c_of` calls its C library on the view's address (one copy into ``bytes`` where that
library cannot be found).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import glob
import ipaddress
import os
import secrets
import socket
import ssl
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import google_crc32c

from .._logging import get_logger
from ..kernel.remote.grpc_tls import wants_tls
from .memcopy import buffer_address

__all__ = [
    "CHECKSUM_ON_LOOPBACK",
    "DATA_CHUNK",
    "HANDSHAKE_TIMEOUT",
    "MAX_DATA_CONNECTIONS",
    "SEND_TIMEOUT",
    "TICKET_BYTES",
    "TICKET_SECONDS",
    "DataEndpoint",
    "RangeFailed",
    "RangeReceiver",
    "active_receivers",
    "crc32c_of",
    "ssl_context",
]

log = get_logger(__name__)

TICKET_BYTES = 32
#: Seconds a loan waits for its data connection before the node lets go of the bytes.
TICKET_SECONDS = 10.0
#: Seconds a new data connection has for its TLS handshake and its ticket.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds the node waits for a puller to take the next `DATA_CHUNK` before it gives up.
SEND_TIMEOUT = 60.0
#: Data connections a node serves at once (each a thread); more are closed at once.
MAX_DATA_CONNECTIONS = 32
#: Bytes sent or received, and checksummed, per call.
DATA_CHUNK = 1 << 20
#: Whether connections over loopback carry the checksum (off: see the module's docstring).
CHECKSUM_ON_LOOPBACK = False
_TRAILER = struct.Struct(">I")


# ---------------------------------------------------------------------------------------
# CRC-32C over memory views.


@functools.cache
def _crc32c_library():
    """google-crc32c's C library (``crc32c_extend(crc, data, length)``), or None."""
    package = os.path.dirname(google_crc32c.__file__)
    candidates = sorted(glob.glob(os.path.join(package, os.pardir, "google_crc32c.libs", "libcrc32c*.so*")))
    system = ctypes.util.find_library("crc32c")
    for path in [*candidates, *([system] if system else [])]:
        try:
            library = ctypes.CDLL(path)
            extend = library.crc32c_extend
        except (OSError, AttributeError):
            continue
        extend.argtypes, extend.restype = (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t), ctypes.c_uint32
        return extend
    log.warning("google-crc32c's C library not found: object transfers copy each chunk to checksum it")
    return None


def crc32c_of(crc: int, view: memoryview) -> int:
    """``crc`` extended by the bytes of ``view`` (1-D, contiguous), without copying them."""
    extend = _crc32c_library()
    if extend is None or not view.nbytes:
        return google_crc32c.extend(crc, bytes(view)) if view.nbytes else crc
    return extend(crc, buffer_address(view), view.nbytes)  # ctypes releases the GIL meanwhile


# ---------------------------------------------------------------------------------------
# TLS.


@functools.lru_cache(maxsize=8)
def ssl_context(tls, server_side: bool) -> ssl.SSLContext:
    """The cluster's TLS context for a data connection (``tls``: the cluster's credentials,
    with ``ssl_server_context``/``ssl_client_context``)."""
    return tls.ssl_server_context() if server_side else tls.ssl_client_context()


def _tls_of(address: str, tls) -> object | None:
    """``tls`` if a data connection at ``address`` must use it, else None; ValueError if it must
    and ``tls`` cannot make plain TLS sockets."""
    if not wants_tls(address, tls):
        return None
    if not hasattr(tls, "ssl_server_context"):
        raise ValueError("the cluster's TLS material has no ssl contexts")
    return tls


# ---------------------------------------------------------------------------------------
# Serving.


@dataclass(slots=True, eq=False)
class _Loan:
    source: object  # a transfer.Source, pinned until released
    start: int
    end: int
    expiry: asyncio.TimerHandle | None = None


class DataEndpoint:
    """A node's data endpoint: lends ranges of its objects' bytes to one data connection each.

    ``lend(source, start, end)`` returns the ticket; the endpoint releases ``source`` exactly
    once: when the range was sent, the connection failed, or the ticket expired unused.
    """

    def __init__(self, host: str, tls=None) -> None:
        self._host = host
        self._tls = tls
        self._loans: dict[bytes, _Loan] = {}
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on the host (any free port: `port`); raises OSError if it cannot."""
        self._loop = asyncio.get_running_loop()
        host = self._host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, 0), family=family, backlog=MAX_DATA_CONNECTIONS)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._executor = ThreadPoolExecutor(MAX_DATA_CONNECTIONS, thread_name_prefix="actorcore-transfer-send")
        self._accepting = self._loop.create_task(self._accept())

    def lend(self, source, start: int, end: int) -> bytes:
        """A ticket for bytes [start, end) of ``source``'s view, valid once, for `TICKET_SECONDS`."""
        ticket = secrets.token_bytes(TICKET_BYTES)
        loan = self._loans[ticket] = _Loan(source, start, end)
        loan.expiry = self._loop.call_later(TICKET_SECONDS, self._expire, ticket)
        return ticket

    def _expire(self, ticket: bytes) -> None:
        loan = self._loans.pop(ticket, None)
        if loan is not None:
            loan.source.release()

    async def _accept(self) -> None:
        loop = self._loop
        while True:
            try:
                connection, _ = await loop.sock_accept(self._listener)
            except OSError as error:
                log.warning("the object data endpoint cannot accept a connection", error=repr(error))
                await asyncio.sleep(0.1)
                continue
            if len(self._sockets) >= MAX_DATA_CONNECTIONS:
                connection.close()
                continue
            self._sockets.add(connection)
            loop.run_in_executor(self._executor, self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        """One data connection, in a thread of its own: the ticket, then the range."""
        loan = None
        try:
            connection.setblocking(True)
            connection.settimeout(HANDSHAKE_TIMEOUT)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                plain, connection = connection, ssl_context(self._tls, True).wrap_socket(connection, server_side=True)
                self._sockets.discard(plain)
                self._sockets.add(connection)
            ticket = _receive_exactly(connection, TICKET_BYTES)
            loan = self._loans.pop(ticket, None) if ticket is not None else None
            if loan is None:
                return  # closed unread: not a ticket of this node, used, or expired
            self._loop.call_soon_threadsafe(loan.expiry.cancel)
            connection.settimeout(SEND_TIMEOUT)
            self._send(connection, loan)
        except (OSError, ValueError) as error:  # the peer went away, or this endpoint stopped
            log.debug("an object data connection failed", error=repr(error))
        finally:
            self._sockets.discard(connection)
            connection.close()
            if loan is not None:
                try:
                    self._loop.call_soon_threadsafe(loan.source.release)
                except RuntimeError:  # the loop is closed: nobody else can release it any more
                    loan.source.release()

    def _send(self, connection: socket.socket, loan: _Loan) -> None:
        view = loan.source.view
        checksum = _checksummed(connection)
        crc = 0
        for offset in range(loan.start, loan.end, DATA_CHUNK):
            chunk = view[offset:min(offset + DATA_CHUNK, loan.end)]
            if checksum:
                crc = crc32c_of(crc, chunk)
            connection.sendall(chunk)
        connection.sendall(_TRAILER.pack(crc))

    async def stop(self) -> None:
        """Stop: close the listener and every data connection, release every loan."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for ticket in list(self._loans):
            loan = self._loans.get(ticket)
            if loan is not None:
                loan.expiry.cancel()
            self._expire(ticket)
        for connection in list(self._sockets):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
            await asyncio.sleep(0)  # the releases the threads scheduled


def _checksummed(connection: socket.socket) -> bool:
    """Whether the bytes on ``connection`` carry a checksum (see the module's docstring)."""
    if isinstance(connection, ssl.SSLSocket):
        return False
    host = connection.getsockname()[0]
    return CHECKSUM_ON_LOOPBACK or not ipaddress.ip_address(host.partition("%")[0]).is_loopback


def _receive_exactly(connection: socket.socket, count: int) -> bytes | None:
    """Exactly ``count`` bytes, or None if the peer closed first."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    received = 0
    while received < count:
        n = connection.recv_into(view[received:])
        if n == 0:
            return None
        received += n
    return bytes(buffer)


# ---------------------------------------------------------------------------------------
# Receiving.


class RangeFailed(Exception):
    """A data connection failed; the message says how (internal: becomes a TransferError)."""


_receive_executor: ThreadPoolExecutor | None = None
_active = 0  # receiving threads running in this process
_active_lock = threading.Lock()


def active_receivers() -> int:
    """How many ranges this process is receiving right now (threads that may write into a destination)."""
    return _active


def _receivers() -> ThreadPoolExecutor:
    global _receive_executor
    if _receive_executor is None:
        _receive_executor = ThreadPoolExecutor(MAX_DATA_CONNECTIONS, thread_name_prefix="actorcore-transfer-recv")
    return _receive_executor


class RangeReceiver:
    """Receives bytes [start, end) of an object over a data connection into
    ``destination[start:end]`` (`receive`); `abort` ends it from another thread or task."""

    def __init__(self, address: str, port: int, ticket: bytes, destination: memoryview, start: int, end: int,
                 *, tls=None, timeout: float) -> None:
        self._host = address.rpartition(":")[0].strip("[]")
        self._port = port
        self._tls = _tls_of(address, tls)
        self._ticket = ticket
        self._destination = destination
        self._start, self._end = start, end
        self._timeout = timeout
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._aborted = False
        self.received = 0

    async def receive(self) -> None:
        """Receive the range; raises `RangeFailed`. If cancelled, the connection is shut down and
        its thread has ended before the cancellation propagates."""
        connection = await self._connect()
        future = asyncio.get_running_loop().run_in_executor(_receivers(), self._run, connection)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            self.abort()
            await asyncio.gather(future, return_exceptions=True)
            raise

    async def _connect(self) -> socket.socket:
        """A TCP connection to the data endpoint, made on the event loop (so that a cancelled
        pull never waits for a connection attempt)."""
        loop = asyncio.get_running_loop()
        connection = None
        try:
            family, kind, proto, _, where = (await loop.getaddrinfo(self._host, self._port,
                                                                    type=socket.SOCK_STREAM))[0]
            connection = socket.socket(family, kind, proto)
            connection.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(connection, where), self._timeout)
        except (OSError, asyncio.TimeoutError) as error:
            if connection is not None:
                connection.close()
            if isinstance(error, asyncio.TimeoutError):
                reason = f"no answer for {self._timeout:g} s"
            else:
                reason = os.strerror(error.errno) if error.errno else str(error)
            raise RangeFailed(f"cannot open a data connection to port {self._port}: {reason}") from None
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        return connection

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            connection = self._socket
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self, connection: socket.socket) -> None:
        global _active
        with _active_lock:
            _active += 1
        try:
            self._receive(connection)
        finally:
            with _active_lock:
                _active -= 1

    def _receive(self, connection: socket.socket) -> None:
        start, end = self._start, self._end
        try:
            with self._lock:
                if self._aborted:
                    return
                self._socket = connection
            connection.setblocking(True)
            connection.settimeout(self._timeout)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                connection.settimeout(HANDSHAKE_TIMEOUT)
                secure = ssl_context(self._tls, False).wrap_socket(connection, server_hostname=self._tls.server_name)
                with self._lock:
                    self._socket = connection = secure
                    if self._aborted:
                        return
                connection.settimeout(self._timeout)
            connection.sendall(self._ticket)
            self._receive_into(connection)
        except TimeoutError:
            raise RangeFailed(f"the node sent nothing for {self._timeout:g} s after {self.received} of the "
                              f"{end - start} bytes of [{start}, {end}) (stalled)") from None
        except (OSError, ValueError) as error:
            if self._aborted:
                return
            raise RangeFailed(f"the data connection for bytes [{start}, {end}) failed after {self.received} "
                              f"bytes: {error}") from None
        finally:
            with self._lock:
                self._socket = None
            connection.close()

    def _receive_into(self, connection: socket.socket) -> None:
        start, end = self._start, self._end
        destination = self._destination
        checksum = _checksummed(connection)
        crc = 0
        position = start
        while position < end:
            chunk_end = min(position + DATA_CHUNK, end)
            chunk = destination[position:chunk_end]
            filled = 0
            while filled < chunk.nbytes:
                n = connection.recv_into(chunk[filled:])
                if n == 0:
                    if self._aborted:
                        return
                    raise RangeFailed(f"the node closed the data connection after {self.received} of the "
                                      f"{end - start} bytes of [{start}, {end})"
                                      + (" (ticket refused)" if not self.received else ""))
                filled += n
                self.received += n
            if checksum:
                crc = crc32c_of(crc, chunk)
            position = chunk_end
        trailer = _receive_exactly(connection, _TRAILER.size)
        if trailer is None:
            if self._aborted:
                return
            raise RangeFailed(f"the node closed the data connection before the checksum of bytes [{start}, {end})")
        (sent,) = _TRAILER.unpack(trailer)
        if checksum and sent != crc:
            raise RangeFailed(f"checksum mismatch in bytes [{start}, {end}): the node sent CRC-32C {sent:#010x}, "
                              f"the received bytes have {crc:#010x} (corrupted in transit)")
