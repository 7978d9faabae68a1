"""Fixtures for the object tests: a unique session per test, checked to leave no segment in
/dev/shm and no mapping of one in this process."""

from __future__ import annotations

import gc
import os
import sys
import uuid

import pytest

from actorcore.objects import SEGMENT_PREFIX, cleanup_session, list_segments

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="needs /dev/shm and /proc/self/maps")


def mappings(name_prefix: str) -> list[tuple[int, int, str]]:
    """(start, end, path) of this process's mappings of segments whose name starts so."""
    found = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/dev/shm/" + name_prefix):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                found.append((start, end, parts[5].rstrip("\n")))
    return found


def mapping_of(name: str) -> tuple[int, int, str]:
    """The single mapping of segment ``name`` (possibly marked ``(deleted)``)."""
    found = [m for m in mappings(name) if m[2].split(" ")[0] == "/dev/shm/" + name]
    assert len(found) == 1, found
    return found[0]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def session():
    """A fresh session name; afterwards none of its segments may exist or stay mapped."""
    name = f"t{os.getpid()}_{uuid.uuid4().hex[:10]}"
    yield name
    gc.collect()
    leftover = list_segments(name)
    cleanup_session(name)
    assert leftover == [], f"segments left behind: {leftover}"
    if LINUX:
        prefix = f"{SEGMENT_PREFIX}{name}-"
        assert mappings(prefix) == [], "segments still mapped after the test"
