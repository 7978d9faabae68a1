"""Values to payloads and back: how an object travels (inline bytes, or the node's arena).

An object under `INLINE_THRESHOLD` travels as `Inline` bytes; a larger one is written into
the node's shared-memory arena (`LocalObjects.write`) and travels as `InShm` (where it is).
A `Failed` payload carries the error that `get` raises.
"""

from __future__ import annotations

from typing import Any

from .. import exceptions as exc
from ..kernel import ActorRef
from ..objects import INLINE_THRESHOLD, Serialized, deserialize, serialize
from ..protocol import Inline, InShm
from .local_objects import LocalObjects

__all__ = ["from_payload", "to_payload"]


def to_payload(value: Any, object_id: str, local: LocalObjects | None, what: str,
               owner: ActorRef | None = None, serialized: Serialized | None = None):
    """Serialize `value` (described as `what` in errors; or take its `serialized` form) into an
    `Inline` payload, or into the node's arena for `owner`; raises TypeError if it cannot be
    serialized, ObjectStoreFullError if the store has no room."""
    if serialized is None:
        try:
            serialized = serialize(value)
        except TypeError as error:
            raise TypeError(f"{what} cannot be serialized: {error}") from None
    if serialized.total_size < INLINE_THRESHOLD or local is None:
        return Inline(serialized.to_bytes())
    return local.write(object_id, serialized, owner)


def from_payload(payload, local: LocalObjects | None = None) -> Any:
    """The value of a payload; raises the error of a `Failed` one, as `get` does."""
    if type(payload) is Inline:
        return deserialize(memoryview(payload.data))
    if type(payload) is InShm:
        if local is None:
            raise exc.ObjectLostError(payload.object_id, "this process has no node to read it from")
        return local.read(payload)
    error = payload.error
    if isinstance(error, exc.TaskError):
        raise error.as_instanceof_cause()
    raise error
