"""Values to payloads and back: how an object travels (inline bytes, or a shared-memory segment).

An object under `INLINE_THRESHOLD` travels as `Inline` bytes; a larger one is written to a
shared-memory segment registered with the node's ObjectStore and travels as `InShm` (its
name and size). A `Failed` payload carries the error that `get` raises.
"""

from __future__ import annotations

from typing import Any

from .. import exceptions as exc
from ..kernel import ActorRef
from ..objects import INLINE_THRESHOLD, deserialize, get_shared, put_shared, serialize
from ..protocol import Inline, InShm, RegisterSegment

__all__ = ["from_payload", "to_payload"]


def to_payload(value: Any, object_id: str, node_id: str, store: ActorRef | None, what: str,
               owner: ActorRef | None = None):
    """Serialize `value` (described as `what` in errors) into an `Inline` payload, or into
    shared memory registered with `store` for `owner`; raises TypeError if it cannot be
    serialized."""
    try:
        serialized = serialize(value)
    except TypeError as error:
        raise TypeError(f"{what} cannot be serialized: {error}") from None
    if serialized.total_size < INLINE_THRESHOLD or store is None:
        return Inline(serialized.to_bytes())
    name, size = put_shared(node_id, object_id, serialized)
    store.tell(RegisterSegment(object_id, name, size, owner))
    return InShm(name, size, node_id)


def from_payload(payload) -> Any:
    """The value of a payload; raises the error of a `Failed` one, as `get` does."""
    if type(payload) is Inline:
        return deserialize(memoryview(payload.data))
    if type(payload) is InShm:
        return get_shared(payload.name, payload.size)
    error = payload.error
    if isinstance(error, exc.TaskError):
        raise error.as_instanceof_cause()
    raise error
