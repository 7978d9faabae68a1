"""The node's object store with a capacity: spilling to disk and restoring, pins that keep
objects in memory, ObjectStoreFullError, and nothing left behind (real node, real workers)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import actorcore as ray
from actorcore import api
from actorcore.objects import list_segments
from actorcore.objects.spill import spill_directory
from actorcore.protocol import GetStoreUsage

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
CAPACITY = 32 * MIB
OBJECT = 4 * MIB  # 8 fit; tests put 24 (3x the capacity)


@pytest.fixture
def small_store(tmp_path):
    ray.init(num_cpus=2, object_store_memory=CAPACITY, object_spilling_directory=str(tmp_path))
    node_id = api._local.node_id
    yield node_id, spill_directory(node_id, tmp_path)
    ray.shutdown()
    assert not spill_directory(node_id, tmp_path).exists()
    assert list_segments(node_id) == []


def usage():
    core = api._runtime()
    return core.system.ask_sync(core.store, GetStoreUsage())


def distinct(i: int) -> np.ndarray:
    return np.full(OBJECT, i % 251, dtype=np.uint8)


def test_three_times_the_capacity_comes_back_correct(small_store):
    _node_id, spill_dir = small_store
    refs = [ray.put(distinct(i)) for i in range(24)]
    spilled = usage()
    assert spilled.capacity == CAPACITY
    assert spilled.bytes <= CAPACITY
    assert spilled.spilled_objects >= 16 and spilled.spilled_bytes >= 16 * OBJECT
    assert len(os.listdir(spill_dir)) == spilled.spilled_objects
    for i, ref in enumerate(refs):
        value = ray.get(ref)
        assert value.shape == (OBJECT,) and value[0] == value[-1] == i % 251
        assert value.sum() == OBJECT * (i % 251)
        del value
    del refs, ref
    assert usage().spilled_objects == 0  # (the frees went to the store before this ask, from one sender)
    assert os.listdir(spill_dir) == []


def test_spilled_objects_are_task_arguments_and_task_results(small_store):
    @ray.remote
    def make(i):
        return distinct(i)

    @ray.remote
    def check(array, i):
        return bool((array == i % 251).all())

    made = [make.remote(i) for i in range(20)]
    ray.wait(made, num_returns=len(made), fetch_local=False)
    assert usage().spilled_objects > 0
    assert ray.get([check.remote(ref, i) for i, ref in enumerate(made)]) == [True] * 20


def test_a_value_in_use_is_not_spilled_and_a_full_store_says_so(small_store):
    held = [ray.get(ray.put(distinct(i))) for i in range(7)]  # 28 MiB pinned by live arrays
    with pytest.raises(ray.exceptions.ObjectStoreFullError) as caught:
        ray.put(np.zeros(8 * MIB, dtype=np.uint8))
    message = str(caught.value)
    assert f"capacity {CAPACITY} bytes" in message and "in use" in message
    assert "object_store_memory" in message
    assert [int(a[0]) for a in held] == list(range(7))  # untouched
    del held
    ray.get(ray.put(np.zeros(8 * MIB, dtype=np.uint8)))  # room again once they are gone


def test_an_object_larger_than_the_store_is_refused_by_name(small_store):
    with pytest.raises(ray.exceptions.ObjectStoreFullError, match=r"larger than the node's object store \(capacity"):
        ray.put(np.zeros(CAPACITY + MIB, dtype=np.uint8))


def test_spilled_results_outlive_the_worker_that_made_them(small_store):
    @ray.remote
    class Maker:
        def pid(self):
            return os.getpid()

        def make(self, i):
            return distinct(i)

    maker = Maker.remote()
    pid = ray.get(maker.pid.remote())
    refs = [maker.make.remote(i) for i in range(16)]
    ray.wait(refs, num_returns=len(refs), fetch_local=False)
    assert usage().spilled_objects > 0
    os.kill(pid, signal.SIGKILL)
    for i, ref in enumerate(refs):
        assert ray.get(ref)[123] == i % 251


@pytest.mark.parametrize(("value", "error", "message"), [
    ("1GB", TypeError, "takes a number of bytes"),
    (1.5e9, TypeError, "takes a number of bytes"),
    (1000, ValueError, "must be at least 1048576 bytes, got 1000"),
])
def test_a_bad_object_store_memory_is_refused_by_name(value, error, message):
    with pytest.raises(error, match=message):
        ray.init(object_store_memory=value)
    assert not ray.is_initialized()


def test_the_cli_refuses_a_store_too_small(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "actorcore", "start", "--head", "--object-store-memory", "10"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "ACTORCORE_HOME": str(tmp_path)})
    assert result.returncode == 2 and "--object-store-memory" in result.stderr and "1048576" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk for the spill folder needs root")
def test_a_full_disk_makes_put_fail_by_name_and_loses_nothing(tmp_path):
    import subprocess
    import sys
    import textwrap

    disk = tmp_path / "disk"
    disk.mkdir()
    program = textwrap.dedent(f"""
        import subprocess, numpy as np, actorcore as ray
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", {str(disk)!r}], check=True)
        ray.init(num_cpus=1, object_store_memory={8 * MIB}, object_spilling_directory={str(disk)!r})
        refs = []
        try:
            for i in range(10):
                refs.append(ray.put(np.full({2 * MIB}, i, dtype=np.uint8)))
        except ray.exceptions.ObjectStoreFullError as error:
            print("FULL", len(refs), str(error).replace(chr(10), " "))
        print("BACK", [int(ray.get(r)[-1]) for r in refs])
        ray.shutdown()
    """)
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", program],
                            capture_output=True, text=True, timeout=100, check=False)
    assert result.returncode == 0, result.stderr
    full = next(line for line in result.stdout.splitlines() if line.startswith("FULL"))
    stored = int(full.split()[1])
    assert 4 <= stored < 10, full  # the arena's objects, then as many as the disk held
    assert "spilling to" in full and "No space left on device" in full and "--object-spilling-directory" in full
    assert f"BACK {list(range(stored))}" in result.stdout
