"""The cluster secret, and the keyed MACs made from it (docs/architecture.md, "Security model").

Every process of a cluster holds the secret (the cluster token); none ever sends it. What
proves membership is a MAC keyed by it: the handshake between actor systems, a gRPC call's
proof, a record written to etcd. Each use has its own key, derived from the secret and a
purpose name, so that a MAC made for one use is worthless for another. A MAC covers a
sequence of byte strings, each prefixed by its length, so that no two sequences collide.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MAC_SIZE", "ClusterSecret"]

MAC_SIZE = hashlib.sha256().digest_size


class ClusterSecret:
    """The secret every process of one cluster holds; keyed MACs for each purpose."""

    __slots__ = ("_secret", "_keys")

    def __init__(self, token: str | bytes) -> None:
        secret = token.encode() if isinstance(token, str) else bytes(token)
        if not secret:
            raise ValueError("the cluster secret is empty: a cluster needs its token (see `actorcore start --head`)")
        self._secret = secret
        self._keys: dict[str, bytes] = {}

    def key(self, purpose: str) -> bytes:
        """The key for `purpose` (e.g. ``"handshake"``): the same in every process of the cluster."""
        key = self._keys.get(purpose)
        if key is None:
            key = self._keys[purpose] = hmac.digest(self._secret, b"actorcore key/" + purpose.encode(), "sha256")
        return key

    def mac(self, purpose: str, *parts: bytes) -> bytes:
        """The MAC of `parts` (in order) under the key for `purpose`."""
        h = hmac.new(self.key(purpose), digestmod=hashlib.sha256)
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.digest()

    def verify(self, purpose: str, mac: bytes, *parts: bytes) -> bool:
        """True if `mac` is the MAC of `parts` for `purpose` (compared in constant time)."""
        return hmac.compare_digest(self.mac(purpose, *parts), mac)

    def __repr__(self) -> str:
        return "ClusterSecret(<hidden>)"
