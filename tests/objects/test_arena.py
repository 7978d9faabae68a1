"""The arena: writes sealed by their header, zero-copy reads pinned by OFD locks that keep the
store from reusing an extent, released when the last view goes or the reader's process dies."""

import gc
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from actorcore.objects.arena import Arena, ArenaClient, extent_size
from actorcore.objects.serialization import serialize
from actorcore.objects.shm import use_cluster_secret

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def arena():
    use_cluster_secret(None)  # unkeyed names, as in the reader processes these tests start
    node_id = uuid.uuid4().hex[:12]
    store = Arena(node_id, 16 << 20)
    client = ArenaClient(node_id)
    yield node_id, store, client
    client.close()
    store.close()


def _put(store, client, start, object_id, value):
    serialized = serialize(value)
    store.reserve(start, extent_size(serialized.total_size))
    client.write(start, object_id, serialized)
    return serialized.total_size


def test_a_written_object_reads_back_zero_copy_and_read_only(arena):
    _node_id, store, client = arena
    value = np.arange(500_000, dtype=np.int64)
    size = _put(store, client, 0, "obj1", value)
    found, back = client.read(0, "obj1", size)
    assert found and np.array_equal(back, value)
    assert not back.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 1


def test_a_read_of_another_object_or_an_invalidated_extent_is_refused(arena):
    _node_id, store, client = arena
    size = _put(store, client, 0, "obj1", b"x" * 300_000)
    assert client.read(0, "obj2", size) == (False, None)
    assert client.read(0, "obj1", size + 1) == (False, None)
    assert client.read(4096 * 1000, "obj1", size) == (False, None)  # nothing written there
    store.invalidate(0)
    assert client.read(0, "obj1", size) == (False, None)


def test_a_live_value_pins_its_extent_until_it_is_gone(arena):
    _node_id, store, client = arena
    size = _put(store, client, 0, "obj1", np.ones(200_000))
    length = extent_size(size)
    _found, value = client.read(0, "obj1", size)
    view = value[10:20]  # a slice keeps the pin too
    assert not store.try_exclusive(0, length)
    del value
    gc.collect()
    assert not store.try_exclusive(0, length)
    del view
    gc.collect()
    assert store.try_exclusive(0, length)
    store.release(0, length)


def test_values_without_out_of_band_memory_pin_nothing(arena):
    _node_id, store, client = arena
    size = _put(store, client, 0, "obj1", b"y" * 200_000)
    found, value = client.read(0, "obj1", size)
    assert found and value == b"y" * 200_000 and type(value) is bytes
    assert store.try_exclusive(0, extent_size(size))  # bytes are a copy: no pin left


def test_a_store_holding_the_extent_turns_readers_away(arena):
    _node_id, store, client = arena
    size = _put(store, client, 0, "obj1", np.ones(100_000))
    assert store.try_exclusive(0, extent_size(size))
    assert client.read(0, "obj1", size) == (False, None)
    store.release(0, extent_size(size))
    assert client.read(0, "obj1", size)[0]


def test_a_pin_of_a_reader_in_another_process_holds_until_that_process_dies(arena):
    node_id, store, client = arena
    size = _put(store, client, 0, "obj1", np.ones(100_000))
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from actorcore.objects.arena import ArenaClient
        found, value = ArenaClient({node_id!r}).read(0, "obj1", {size})
        print(found and value.sum(), flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "100000.0"
        assert not store.try_exclusive(0, extent_size(size))
    finally:
        reader.kill()
        reader.wait(30)
    assert store.try_exclusive(0, extent_size(size))


def test_an_extent_the_store_lends_to_a_transfer_is_pinned_against_the_store_itself(arena):
    _node_id, store, client = arena
    size = _put(store, client, 0, "obj1", np.ones(100_000))
    assert store.pins.acquire(0)
    assert not store.try_exclusive(0, extent_size(size))  # neither spilled nor reused while lent
    store.pins.drop(0)
    assert store.try_exclusive(0, extent_size(size))
    store.release(0, extent_size(size))
