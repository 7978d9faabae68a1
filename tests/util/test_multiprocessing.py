"""multiprocessing.Pool: the standard library's Pool over actors, with Ray's errors and connection."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from actorcore.testing import is_alive, wait_until
from actorcore.util.multiprocessing import Pool, PoolTaskError

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("cluster")]


def square(x):
    return x * x


def add(a, b=0):
    return a + b


def fail_on_three(x):
    if x == 3:
        raise KeyError("three")
    return x


def pid(_=None):
    return os.getpid()


def set_marker(value):
    os.environ["POOL_TEST_MARKER"] = value


def read_marker(_=None):
    return os.environ.get("POOL_TEST_MARKER")


def wait_for_file(path):
    while not os.path.exists(path):
        threading.Event().wait(0.01)
    return path


@pytest.fixture
def pool():
    made = Pool(processes=2)
    yield made
    made.terminate()


def test_map_starmap_apply_and_imap_results(pool):
    assert pool.map(square, range(10)) == [x * x for x in range(10)]
    assert pool.map(square, range(7), chunksize=3) == [x * x for x in range(7)]
    assert pool.map(square, []) == []
    assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(add, (1,), {"b": 5}) == 6
    assert list(pool.imap(square, range(6), chunksize=2)) == [x * x for x in range(6)]
    assert sorted(pool.imap_unordered(square, iter(range(6)))) == [x * x for x in range(6)]


def test_work_runs_on_every_process(pool):
    assert len(set(pool.map(pid, range(8), chunksize=1))) == 2


def test_an_item_that_raises_raises_its_own_exception(pool):
    with pytest.raises(KeyError, match="three"):
        pool.map(fail_on_three, range(6))
    with pytest.raises(KeyError, match="three"):
        pool.apply(fail_on_three, (3,))
    assert pool.map(fail_on_three, [1, 2]) == [1, 2]  # the pool goes on


def test_imap_yields_a_failed_item_as_a_pool_task_error(pool):
    # Ray's behaviour: the standard library would raise it; Ray yields its wrapper.
    results = list(pool.imap(fail_on_three, range(5)))
    assert results[:3] == [0, 1, 2] and results[4] == 4
    assert isinstance(results[3], PoolTaskError) and isinstance(results[3].underlying, KeyError)


def test_async_results_wait_and_run_callbacks(pool, tmp_path):
    seen = []
    done = pool.map_async(square, range(4), callback=seen.append)
    assert done.get(timeout=60) == [0, 1, 4, 9]
    assert done.ready() and done.successful()
    assert seen == [[0, 1, 4, 9]]  # ran before the result was ready

    errors = []
    failed = pool.map_async(fail_on_three, range(5), error_callback=errors.append)
    failed.wait(60)
    assert failed.ready() and not failed.successful()
    assert len(errors) == 1 and isinstance(errors[0], KeyError)
    with pytest.raises(KeyError):
        failed.get()

    single = pool.apply_async(add, (2, 3), callback=seen.append)
    assert single.get(timeout=60) == 5 and seen[-1] == 5
    assert pool.starmap_async(add, [(1, 1)]).get(timeout=60) == [2]

    flag = tmp_path / "go"
    slow = pool.apply_async(wait_for_file, (str(flag),))
    with pytest.raises(multiprocessing.TimeoutError):
        slow.get(timeout=0.2)
    slow.wait(0.1)  # returns, without raising
    assert not slow.ready()
    with pytest.raises(ValueError, match="not ready"):
        slow.successful()
    flag.touch()
    assert slow.get(timeout=60) == str(flag)


def test_imap_next_with_a_timeout(pool, tmp_path):
    flag = tmp_path / "go"
    results = pool.imap(wait_for_file, [str(flag)])
    with pytest.raises(TimeoutError):
        results.next(timeout=0.2)
    flag.touch()
    assert results.next(timeout=60) == str(flag)
    with pytest.raises(StopIteration):
        results.next()


def test_initializer_runs_in_each_process():
    with Pool(processes=2, initializer=set_marker, initargs=("ready",)) as pool:
        assert pool.map(read_marker, range(4), chunksize=1) == ["ready"] * 4


def test_maxtasksperchild_replaces_a_process_after_that_many_chunks():
    with Pool(processes=1, maxtasksperchild=1) as pool:
        pids = pool.map(pid, range(3), chunksize=1)
    assert len(set(pids)) == 3


def test_close_lets_work_finish_then_ends_the_processes():
    pool = Pool(processes=2)
    pids = set(pool.map(pid, range(4), chunksize=1))
    pending = pool.map_async(square, range(20), chunksize=1)
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, [1])
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply_async(square, (1,))
    pool.join()
    assert pending.get(timeout=0) == [x * x for x in range(20)]
    wait_until(lambda: not any(is_alive(p) for p in pids), 30, "the pool's processes to end")


def test_terminate_and_the_with_block_end_the_processes_now():
    with Pool(processes=2) as pool:
        pids = set(pool.map(pid, range(4), chunksize=1))
    wait_until(lambda: not any(is_alive(p) for p in pids), 30, "the pool's processes to end")
    with pytest.raises(ValueError, match="Pool not running"):
        pool.imap(square, [1])
    pool.join()  # a terminated pool is closed


def test_join_before_close_raises(pool):
    with pytest.raises(ValueError, match="Pool is still running"):
        pool.join()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="Processes in the pool must be >0"):
        Pool(processes=0)
    with pytest.raises(ValueError, match="only 2 CPUs"):
        Pool(processes=3)
    with Pool(processes=1) as pool, pytest.raises(ValueError, match="chunksize"):
        pool.map(square, [1], chunksize=0)


def test_an_uninitialized_process_starts_a_local_cluster_as_ray_address_local_says(tmp_path):
    script = textwrap.dedent("""
        import actorcore
        from actorcore.util.multiprocessing import Pool
        assert not actorcore.is_initialized()
        with Pool(processes=3) as pool:
            print(actorcore.is_initialized(), actorcore.cluster_resources()["CPU"], pool.map(abs, [-1, -2]))
        actorcore.shutdown()
    """)
    env = {**os.environ, "RAY_ADDRESS": "local", "ACTORCORE_HOME": str(tmp_path)}
    env.pop("ACTORCORE_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=150, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[0] == "True 3.0 [1, 2]"
