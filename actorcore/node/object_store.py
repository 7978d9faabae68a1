"""The ObjectStore actor (DESIGN.md §4, §5): the node's table of shared-memory objects.

Large objects (≥ 100 KiB) are written by their producer into one shared-memory segment each
and registered here; same-node readers map them read-only. The owner frees them when the
last reference is gone (`FreeObjects`), and the node's shutdown removes whatever is left, so
no segment outlives the session. (Spilling and transfers between nodes come with clusters.)
"""

from __future__ import annotations

from ..kernel import Actor
from ..objects import shm
from ..protocol import FreeObjects, RegisterSegment


class ObjectStore(Actor):
    def __init__(self, session: str) -> None:
        self.session = session
        self.segments: dict[str, tuple[str, int]] = {}
        self.bytes_used = 0

    async def receive(self, message):
        if isinstance(message, RegisterSegment):
            if message.object_id not in self.segments:
                self.segments[message.object_id] = (message.name, message.size)
                self.bytes_used += message.size
        elif isinstance(message, FreeObjects):
            for object_id in message.names:
                entry = self.segments.pop(object_id, None)
                if entry is not None:
                    self.bytes_used -= entry[1]
                    shm.unlink_segment(entry[0])
        elif message == "usage":
            return {"objects": len(self.segments), "bytes": self.bytes_used}
        return None

    async def post_stop(self) -> None:
        self.segments.clear()
        shm.cleanup_session(self.session)
