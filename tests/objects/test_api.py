"""The public surface of actorcore.objects, pinned: a change here is a change of API."""

from __future__ import annotations

import actorcore.objects


def test_objects_exports():
    assert sorted(actorcore.objects.__all__) == sorted([
        "ALIGNMENT", "INLINE_THRESHOLD", "SEGMENT_PREFIX", "Segment", "Serialized",
        "SharedMemoryFullError", "cleanup_session", "create_segment", "deserialize",
        "list_segments", "open_segment", "segment_name",
        "serialize", "unlink_segment",
    ])
    for name in actorcore.objects.__all__:
        assert hasattr(actorcore.objects, name), name


def test_modules_point_to_the_architecture_doc():
    from actorcore.objects import allocator, arena, memcopy, serialization, shm, spill

    for module in (actorcore.objects, allocator, arena, memcopy, serialization, shm, spill):
        assert "docs/architecture.md" in module.__doc__, module.__name__
