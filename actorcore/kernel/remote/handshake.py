"""The handshake that opens every connection between actor systems: each side proves it holds
the cluster secret, and neither ever sends it (docs/architecture.md, "Security model").

1. The connecting side sends its `Hello` (who it is, where it listens, a fresh nonce).
2. The accepting side answers with its own `Hello` and its `Proof`: a MAC, keyed by the
   cluster secret, of both Hellos and the role ``accepting``.
3. The connecting side checks that proof before it sends anything else, then sends its own
   `Proof` (the same transcript, role ``connecting``) and, right behind it, its envelopes.
   The accepting side reads nothing past that proof until it has checked it.

One round trip, as the token-carrying Hello it replaces. Fresh nonces on both sides make
every transcript new, so a recorded proof is worthless on another connection, and the role
in the MAC keeps a proof made for one direction from being reflected in the other.

A system without a secret (started ``insecure``) sends empty proofs and accepts any.
"""

from __future__ import annotations

import os
import re

from ..._proto import kernel_pb2 as pb
from ..secret import ClusterSecret

__all__ = [
    "ACCEPTING",
    "CONNECTING",
    "NONCE_SIZE",
    "hello_problem",
    "make_proof",
    "new_nonce",
    "proof_valid",
]

PURPOSE = "handshake"
NONCE_SIZE = 16
ACCEPTING = b"accepting"
CONNECTING = b"connecting"

# What `kernel.address.new_system_id` makes (a pid, a dash, random hex), with room to grow.
_SYSTEM_ID = re.compile(r"[0-9]{1,12}-[0-9a-f]{8,32}")


def new_nonce() -> bytes:
    """Fresh random bytes for one side of one connection."""
    return os.urandom(NONCE_SIZE)


def _transcript(role: bytes, connecting: pb.Hello, accepting: pb.Hello) -> tuple[bytes, bytes, bytes]:
    return (role, connecting.SerializeToString(deterministic=True), accepting.SerializeToString(deterministic=True))


def make_proof(secret: ClusterSecret | None, role: bytes, connecting: pb.Hello, accepting: pb.Hello) -> pb.Frame:
    """The `Proof` frame the side playing `role` sends (empty without a secret)."""
    mac = secret.mac(PURPOSE, *_transcript(role, connecting, accepting)) if secret is not None else b""
    return pb.Frame(proof=pb.Proof(mac=mac))


def proof_valid(secret: ClusterSecret | None, role: bytes, proof: pb.Proof,
                connecting: pb.Hello, accepting: pb.Hello) -> bool:
    """Whether `proof`, from the side playing `role`, was made with the cluster secret for
    this transcript (always true without a secret)."""
    if secret is None:
        return True
    return secret.verify(PURPOSE, proof.mac, *_transcript(role, connecting, accepting))


def hello_problem(hello: pb.Hello) -> str | None:
    """What is wrong with a received Hello (None if nothing). Says nothing of its contents:
    they come from a peer not yet authenticated and must not reach a log."""
    if not _SYSTEM_ID.fullmatch(hello.system_id):
        return "its system id is not one an actor system makes"
    if len(hello.nonce) != NONCE_SIZE:
        return f"its nonce is not {NONCE_SIZE} bytes"
    return None
