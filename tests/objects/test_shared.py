"""put_shared/get_shared: large objects in shared memory, read zero-copy and read-only."""

from __future__ import annotations

import errno
import gc
import os
import subprocess
import sys
import textwrap

import pytest

from actorcore.objects import (
    INLINE_THRESHOLD,
    SharedMemoryFullError,
    get_shared,
    list_segments,
    put_shared,
    segment_name,
    serialization,
    serialize,
    unlink_segment,
)

from .conftest import linux_only, mapping_of, mappings, rss_bytes

np = pytest.importorskip("numpy")

pytestmark = pytest.mark.timeout(60)


def address(arr) -> int:
    return arr.__array_interface__["data"][0]


def put_get(session, object_id, value):
    ser = serialize(value)
    name, size = put_shared(session, object_id, ser)
    assert name == segment_name(session, object_id) and size == ser.total_size
    try:
        return get_shared(name, size)
    finally:
        unlink_segment(name)


LARGE = {
    "float64": lambda: np.random.default_rng(0).random(200_000),
    "int32-3d": lambda: np.arange(120_000, dtype=np.int32).reshape(30, 40, 100),
    "structured": lambda: np.zeros(20_000, dtype=[("id", "<i8"), ("x", "<f4"), ("tag", "S8")]),
    "fortran": lambda: np.asfortranarray(np.arange(100_000.0).reshape(250, 400)),
    "non-contiguous": lambda: np.arange(400_000, dtype=np.int64)[::3],
}


@pytest.mark.parametrize("make", LARGE.values(), ids=LARGE.keys())
def test_large_arrays_round_trip(session, make):
    arr = make()
    assert serialize(arr).total_size > INLINE_THRESHOLD
    back = put_get(session, "a", arr)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert np.array_equal(back, arr)
    assert back.flags.writeable is False


@pytest.mark.parametrize(
    "value",
    [list(range(100_000)), {"text": "y" * 300_000, "n": 1}, {"small": 1}],
    ids=["list", "str", "small"],
)
def test_plain_values_round_trip(session, value):
    assert put_get(session, "v", value) == value


def test_mixed_value_round_trips(session):
    value = {"arrays": [np.arange(50_000), np.ones((100, 100))], "meta": {"k": "v"}}
    back = put_get(session, "mixed", value)
    assert all(np.array_equal(b, a) for b, a in zip(back["arrays"], value["arrays"], strict=True))
    assert all(b.flags.writeable is False for b in back["arrays"])
    assert back["meta"] == value["meta"]


@linux_only
def test_arrays_from_shared_memory_are_read_only_views_of_the_mapping(session):
    arr = np.arange(1_000_000, dtype=np.float64)
    name, size = put_shared(session, "zc", serialize(arr))
    try:
        back = get_shared(name, size)
        start, end, _ = mapping_of(name)
        assert start <= address(back) and address(back) + back.nbytes <= end  # zero-copy
        assert address(back) % 64 == 0
        assert back.flags.writeable is False
        with pytest.raises(ValueError, match="read-only"):
            back[0] = 1.0
        with pytest.raises(ValueError, match="WRITEABLE"):
            back.flags.writeable = True
        assert np.array_equal(back, arr)
        del back
        gc.collect()
        assert mappings(name) == []  # released with the array
    finally:
        unlink_segment(name)


@linux_only
def test_unlinked_segment_stays_valid_while_an_array_holds_it(session):
    arr = np.random.default_rng(5).random(300_000)
    name, size = put_shared(session, "held", serialize(arr))
    back = get_shared(name, size)
    view2 = back[1000:2000]  # a derived view keeps it alive too
    assert unlink_segment(name)
    assert not os.path.exists(f"/dev/shm/{name}")
    assert list_segments(session) == []
    assert mapping_of(name)[2].endswith("(deleted)")
    assert np.array_equal(back, arr)
    del back
    gc.collect()
    assert np.array_equal(view2, arr[1000:2000])
    assert len(mappings(name)) == 1
    del view2
    gc.collect()
    assert mappings(name) == []


def test_put_shared_replaces_a_stale_copy_of_the_same_object(session):
    name, _ = put_shared(session, "x", serialize(np.arange(10)))
    try:
        again, size = put_shared(session, "x", serialize(np.arange(100_000)))
        assert again == name
        assert int(get_shared(name, size)[-1]) == 99_999
    finally:
        unlink_segment(name)


@linux_only
def test_put_shared_reports_full_shared_memory_and_leaves_nothing(session, monkeypatch):
    def no_space(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serialization.os, "pwrite", no_space)
    with pytest.raises(SharedMemoryFullError, match="shared memory is full"):
        put_shared(session, "full", serialize(np.arange(100_000)))
    assert list_segments(session) == []


def test_another_process_reads_the_object(session):
    arr = np.arange(500_000, dtype=np.int64)
    name, size = put_shared(session, "xp", serialize(arr))
    code = textwrap.dedent(
        f"""
        from actorcore.objects import get_shared
        a = get_shared({name!r}, {size})
        print(int(a.sum()), a.flags.writeable)
        """
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    finally:
        unlink_segment(name)
    assert out == [str(int(arr.sum())), "False"]


@linux_only
def test_memory_stays_flat_over_many_put_get_unlink_cycles(session):
    arr = np.random.default_rng(7).random(10 * 1024 * 1024 // 8)  # 10 MB

    def cycle(i):
        name, size = put_shared(session, f"m{i}", serialize(arr))
        back = get_shared(name, size)
        assert np.array_equal(back, arr)  # touches every page of the mapping
        unlink_segment(name)

    for i in range(5):  # warm-up
        cycle(i)
    gc.collect()
    before = rss_bytes()
    for i in range(5, 205):
        cycle(i)
    gc.collect()
    growth = rss_bytes() - before
    assert growth < 50 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB over 200 cycles"
    assert list_segments(session) == []
    assert mappings(segment_name(session, "m")) == []
