"""Objects: serialization and shared memory (docs/architecture.md, "Objects: put and get").

- `serialize` / `deserialize` (`serialization`): pickle protocol 5 with out-of-band buffers
  laid out in one region; below `INLINE_THRESHOLD` the bytes (`Serialized.to_bytes`) travel
  inline, above it they go to the node's shared-memory arena.
- `Arena` / `ArenaClient` (`arena`): the node's arena of large objects, its extents
  (`allocator`), pins and zero-copy reads; `spill` its files on disk; `memcopy` the copy in.
- `create_segment` / `open_segment` / `unlink_segment` / `cleanup_session` (`shm`): POSIX
  shared-memory segments ``actorcore-<session>-<name>`` without a resource tracker (the
  arena is one).
"""

from .serialization import (
    ALIGNMENT,
    INLINE_THRESHOLD,
    Serialized,
    deserialize,
    serialize,
)
from .shm import (
    SEGMENT_PREFIX,
    Segment,
    SharedMemoryFullError,
    cleanup_session,
    create_segment,
    list_segments,
    open_segment,
    segment_name,
    unlink_segment,
)

__all__ = [
    "ALIGNMENT",
    "INLINE_THRESHOLD",
    "SEGMENT_PREFIX",
    "Segment",
    "Serialized",
    "SharedMemoryFullError",
    "cleanup_session",
    "create_segment",
    "deserialize",
    "list_segments",
    "open_segment",
    "segment_name",
    "serialize",
    "unlink_segment",
]
