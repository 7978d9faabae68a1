"""A key-value store service for ``actorcore supervise``: its data survives crashes through checkpoints.

Spec (examples/services/services.toml)::

    [services.kv]
    class = "examples.services.kv:KV"
    checkpoint_interval = 0.5

A client: examples/services/kv_client.py.
"""

from __future__ import annotations

import os
from typing import Any


class KV:
    def __init__(self) -> None:
        self.data: dict = {}
        self.restored = False

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def delete(self, key: Any) -> bool:
        """True if the key was there."""
        return self.data.pop(key, _MISSING) is not _MISSING

    def keys(self) -> list:
        return sorted(self.data)

    def size(self) -> int:
        return len(self.data)

    def pid(self) -> int:
        return os.getpid()

    def was_restored(self) -> bool:
        return self.restored

    def __checkpoint__(self) -> dict:
        return dict(self.data)

    def __restore__(self, state: dict) -> None:
        self.data = dict(state)
        self.restored = True


_MISSING = object()
