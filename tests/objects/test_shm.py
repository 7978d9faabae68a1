"""Shared-memory segments: create/open/unlink, read-only readers, deferred close, cleanup."""

from __future__ import annotations

import gc
import os
import pickle
import re
import stat
import struct

import pytest

from actorcore.objects import (
    Segment,
    SharedMemoryFullError,
    cleanup_session,
    create_segment,
    list_segments,
    open_segment,
    segment_name,
    unlink_segment,
)
from actorcore.objects.shm import object_id_of, use_cluster_secret

from .conftest import linux_only, mapping_of, mappings

pytestmark = pytest.mark.timeout(30)


def test_segment_name_format_and_validation():
    for session, object_id in (("s1", "abc123"), ("a_b", "ff.0-1"), ("a_b", "x.y-z.")):
        name = segment_name(session, object_id)
        assert re.fullmatch(rf"actorcore-{session}-{re.escape(object_id)}\.[0-9a-f]{{16}}", name), name
        assert object_id_of(name) == object_id
    for bad_session in ("", "a-b", "a/b", "a b"):
        with pytest.raises(ValueError, match="session must match"):
            segment_name(bad_session, "x")
    for bad_id in ("", "a/b", "a b"):
        with pytest.raises(ValueError, match="object id must match"):
            segment_name("s", bad_id)


def test_create_write_open_read(session):
    name = segment_name(session, "obj")
    seg = create_segment(name, 10_000)
    assert isinstance(seg, Segment) and not seg.readonly and seg.size == 10_000
    seg.view[:5] = b"hello"
    seg.view[-3:] = b"end"
    seg.close()
    reader = open_segment(name)
    assert reader.readonly and reader.size == 10_000
    assert reader.view.readonly
    assert bytes(reader.view[:5]) == b"hello" and bytes(reader.view[-3:]) == b"end"
    assert bytes(reader.view[5:-3]) == bytes(10_000 - 8)
    with pytest.raises(TypeError):
        reader.view[0] = 1
    reader.close()
    with open_segment(name, 5) as part:
        assert part.size == 5 and bytes(part.view) == b"hello"
    with pytest.raises(ValueError, match="greater than file size"):
        open_segment(name, 10_001)
    assert unlink_segment(name) is True
    assert unlink_segment(name) is False  # idempotent


@linux_only
def test_segment_is_private_to_the_user(session):
    name = segment_name(session, "mode")
    create_segment(name, 100).close()
    try:
        assert stat.S_IMODE(os.stat(f"/dev/shm/{name}").st_mode) == 0o600
    finally:
        unlink_segment(name)


def test_create_existing_and_open_missing(session):
    name = segment_name(session, "dup")
    create_segment(name, 64).close()
    try:
        with pytest.raises(FileExistsError):
            create_segment(name, 64)
    finally:
        unlink_segment(name)
    with pytest.raises(FileNotFoundError):
        open_segment(name)
    with pytest.raises(ValueError, match="must be positive"):
        create_segment(segment_name(session, "zero"), 0)


def test_close_is_idempotent_and_view_unusable_after(session):
    name = segment_name(session, "c")
    seg = create_segment(name, 64)
    seg.close()
    seg.close()
    assert seg.closed
    with pytest.raises(ValueError, match="closed"):
        seg.view
    unlink_segment(name)


@linux_only
def test_close_with_exported_views_defers_unmapping(session):
    name = segment_name(session, "exp")
    with create_segment(name, 4096) as seg:
        seg.view[:4] = b"data"
    reader = open_segment(name)
    piece = reader.view[:4]  # a slice: exports the mapping
    whole = pickle.PickleBuffer(reader.view)  # holds a buffer of the segment's view itself
    reader.close()  # must not raise
    unlink_segment(name)
    assert bytes(piece) == b"data" and bytes(whole.raw()[:4]) == b"data"
    assert mapping_of(name)[2].endswith("(deleted)")  # still mapped, name gone
    del piece
    gc.collect()
    assert len(mappings(name)) == 1
    del whole
    gc.collect()
    assert mappings(name) == []  # unmapped with the last view


@linux_only
def test_close_without_exports_unmaps_at_once(session):
    name = segment_name(session, "now")
    create_segment(name, 4096).close()
    reader = open_segment(name)
    assert len(mappings(name)) == 1
    reader.close()
    assert mappings(name) == []
    unlink_segment(name)


@linux_only
def test_full_shared_memory_raises_clear_error(session):
    st = os.statvfs("/dev/shm")
    if st.f_blocks == 0:
        pytest.skip("/dev/shm has no size limit")
    too_big = st.f_blocks * st.f_frsize + (1 << 30)
    name = segment_name(session, "huge")
    with pytest.raises(SharedMemoryFullError) as info:
        create_segment(name, too_big)
    assert "shared memory is full" in str(info.value) and str(too_big) in str(info.value)
    assert isinstance(info.value, OSError)
    assert list_segments(session) == []


def test_cleanup_session_removes_only_that_session(session):
    other = session + "_other"  # a longer session name sharing the prefix
    names = [segment_name(session, f"o{i}") for i in range(5)]
    for n in names:
        create_segment(n, 128).close()
    kept = segment_name(other, "o0")
    create_segment(kept, 128).close()
    try:
        assert list_segments(session) == sorted(names)
        held = open_segment(names[0])  # a live reader does not stop the cleanup
        assert cleanup_session(session) == 5
        assert list_segments(session) == []
        assert cleanup_session(session) == 0
        assert list_segments(other) == [kept]
        assert bytes(held.view[:4]) == bytes(4)
        held.close()
    finally:
        cleanup_session(other)
    assert list_segments(other) == []


@pytest.fixture
def cluster_secret():
    """This process names its segments keyed by a cluster secret during the test."""
    use_cluster_secret("0123456789abcdef0123456789abcdef")
    yield
    use_cluster_secret(None)


def test_names_cannot_be_guessed_without_the_cluster_secret(session, cluster_secret):
    name = segment_name(session, "obj")
    assert name != f"actorcore-{session}-obj"  # the former, predictable name
    assert segment_name(session, "obj") == name  # every process of the cluster computes it
    use_cluster_secret("another cluster's token")
    assert segment_name(session, "obj") != name
    use_cluster_secret(None)
    assert segment_name(session, "obj") != name


def _squat(name: str, uid: int) -> None:
    """Create segment `name` as another user would: mode 0600, owned by `uid`."""
    fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchown(fd, uid, uid)
    finally:
        os.close(fd)


@linux_only
@pytest.mark.skipif(os.geteuid() != 0, reason="acting as two users of the machine needs root")
def test_segments_squatted_by_another_user_break_neither_put_nor_cleanup(session, cluster_secret):
    """Root squats names of a session of uid 65534 (the old name of its object, and another name
    with its prefix); that user's put, get and cleanup, run in a child process, all work, and the
    squatted segments, not theirs, stay."""
    squatted = [f"actorcore-{session}-obj", f"actorcore-{session}-obj.0000000000000000"]
    for name in squatted:
        _squat(name, 0)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the user 65534: report what happened, never return into pytest
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            name = segment_name(session, "obj")
            with create_segment(name, 7) as segment:
                segment.view[:7] = b"payload"
            with open_segment(name) as segment:
                outcome = f"{bytes(segment.view)!r} {cleanup_session(session)}"
            code = 0
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            outcome = repr(error)
        finally:
            os.write(write_fd, struct.pack("!I", len(outcome.encode())) + outcome.encode())
            os._exit(code)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as reader:
            data = reader.read()
        _, status = os.waitpid(pid, 0)
        outcome = data[4:].decode()
        assert os.waitstatus_to_exitcode(status) == 0, outcome
        assert outcome == "b'payload' 1"  # its one segment, removed by its cleanup
        assert list_segments(session) == sorted(squatted)
        assert cleanup_session(session) == 2  # root's own squats
    finally:
        for name in squatted:
            unlink_segment(name)


@linux_only
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a segment to another user needs root")
def test_cleanup_leaves_alone_a_segment_another_user_owns(session):
    mine = segment_name(session, "mine")
    create_segment(mine, 64).close()
    foreign = f"actorcore-{session}-foreign"
    _squat(foreign, 65534)
    try:
        assert cleanup_session(session) == 1
        assert list_segments(session) == [foreign]
    finally:
        unlink_segment(foreign)
