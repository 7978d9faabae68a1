"""Proof of the cluster secret on gRPC calls: every gRPC service of a cluster requires it, and
a call without a valid one is rejected before anything in it is decoded (docs/architecture.md,
"Security model").

A client presents, in metadata key ``x-actorcore-proof`` (`call_proof`), a timestamp, a
random nonce and a MAC (keyed by the cluster secret) of the method, the timestamp and the
nonce; the secret itself never leaves the process. Servers install `ProofCheck`, which
accepts a proof only if its MAC verifies, its timestamp is within `PROOF_WINDOW` seconds of
the server's clock and its nonce was not seen within that window (so a captured header
cannot be replayed to this server), and otherwise answers UNAUTHENTICATED before the
servicer runs. The deny handler has the RPC kind of the method called (unary or streaming
requests and responses) so that gRPC drives it like the real one, and it has no
deserializer: a rejected request's bytes are never decoded.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

import grpc

from ..secret import ClusterSecret
from . import grpc_tls
from .grpc_tls import GrpcTls

__all__ = ["PROOF_METADATA", "PROOF_WINDOW", "ProofCheck", "add_port", "call_proof", "new_channel", "new_server"]

PROOF_METADATA = "x-actorcore-proof"
PURPOSE = "grpc-call"
#: Seconds a proof stays valid either side of the server's clock (clocks of a cluster's
#: hosts may differ by this much).
PROOF_WINDOW = 120.0
DENIED_MESSAGE = "missing, wrong, expired or replayed actorcore cluster proof"
_NONCE_BYTES = 16
_MAX_PROOF_LENGTH = 160  # timestamp, nonce and MAC in hex, with room to spare


def call_proof(secret: ClusterSecret | None, method: str) -> tuple[tuple[str, str], ...] | None:
    """The metadata proving the cluster secret for one call of `method` (e.g.
    ``"/actorcore.transfer.ObjectTransfer/Pull"``); None without a secret."""
    if secret is None:
        return None
    timestamp = str(time.time_ns() // 1_000_000).encode()
    nonce = os.urandom(_NONCE_BYTES).hex().encode()
    mac = secret.mac(PURPOSE, method.encode(), timestamp, nonce).hex()
    return ((PROOF_METADATA, f"{timestamp.decode()}.{nonce.decode()}.{mac}"),)


async def _deny(request_or_iterator, context) -> None:
    # A plain coroutine serves every kind: grpc.aio awaits it when a response-streaming
    # handler is not an async generator.
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED_MESSAGE)


# Indexed by (request_streaming, response_streaming) of the method called.
_DENY_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler(_deny),
    (False, True): grpc.unary_stream_rpc_method_handler(_deny),
    (True, False): grpc.stream_unary_rpc_method_handler(_deny),
    (True, True): grpc.stream_stream_rpc_method_handler(_deny),
}


class ProofCheck(grpc.aio.ServerInterceptor):
    """Rejects a call without a valid, fresh, unreplayed proof with UNAUTHENTICATED before any message is read."""

    def __init__(self, secret: ClusterSecret, window: float = PROOF_WINDOW) -> None:
        self._secret = secret
        self._window = window
        #: nonces of accepted proofs -> when they expire, oldest first
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    async def intercept_service(self, continuation, handler_call_details):
        """The servicer's handler if the call carries a valid proof, else a handler that denies it."""
        if self._accepts(handler_call_details):
            return await continuation(handler_call_details)
        # Looking the handler up runs nothing of the servicer; it tells the RPC kind. An
        # unknown method is denied too (not UNIMPLEMENTED: no probing without the secret).
        handler = await continuation(handler_call_details)
        if handler is None:
            return _DENY_HANDLERS[True, True]
        return _DENY_HANDLERS[bool(handler.request_streaming), bool(handler.response_streaming)]

    def _accepts(self, details) -> bool:
        for key, value in details.invocation_metadata or ():
            if key == PROOF_METADATA:
                return self.check(details.method, value)
        return False

    def check(self, method: str, proof: str | bytes) -> bool:
        """Whether `proof` (a metadata value) is valid for one call of `method` now; a valid
        proof is remembered, so that it is valid only once."""
        if isinstance(proof, str):
            proof = proof.encode()
        if len(proof) > _MAX_PROOF_LENGTH:
            return False
        parts = proof.split(b".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        timestamp, nonce, mac_hex = parts
        try:
            mac = bytes.fromhex(mac_hex.decode())
        except ValueError:
            return False
        now = time.time()
        if abs(now - int(timestamp) / 1000) > self._window:
            return False
        if not self._secret.verify(PURPOSE, mac, method.encode(), timestamp, nonce):
            return False
        seen = self._seen
        while seen:  # forget nonces whose proofs have expired anyway
            oldest, expiry = next(iter(seen.items()))
            if expiry > now:
                break
            del seen[oldest]
        if nonce in seen:
            return False
        seen[nonce] = now + 2 * self._window
        return True


# Every gRPC server and channel of actorcore is made here, so that transport security can be
# added in one place.


def new_server(options: list[tuple[str, object]], secret: ClusterSecret | None) -> grpc.aio.Server:
    """A gRPC server with `options` that requires a proof of `secret` on every call (none
    without a secret: an insecure system)."""
    interceptors = [ProofCheck(secret)] if secret is not None else []
    return grpc.aio.server(options=options, interceptors=interceptors)


def add_port(server: grpc.aio.Server, bind: str, tls: GrpcTls | None = None) -> int:
    """Listen on `bind` ("host:port"), with TLS between hosts if `tls` (see `grpc_tls`); the
    port bound, 0 if it could not be."""
    try:
        return grpc_tls.add_port(server, bind, tls)
    except RuntimeError:
        return 0


def new_channel(target: str, options: list[tuple[str, object]], tls: GrpcTls | None = None) -> grpc.aio.Channel:
    """A gRPC channel to `target` ("host:port") with `options`, with TLS between hosts if `tls`."""
    return grpc_tls.open_channel(target, options, tls)
