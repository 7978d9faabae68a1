"""Remote functions, objects, get/wait: Ray's semantics, on a real local cluster."""

from __future__ import annotations

import time

import numpy as np
import pytest

import actorcore as ray
from actorcore import exceptions as exc
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(60)


@ray.remote
def double(x):
    return x * 2


@ray.remote
def identity(x):
    return x


@ray.remote
def fail(message):
    raise ValueError(message)


class MyError(Exception):
    pass


@ray.remote
def fail_custom():
    raise MyError("custom failure")


@ray.remote
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@ray.remote(num_returns=3)
def three():
    return 1, 2, 3


def test_remote_and_get(cluster):
    assert ray.get(double.remote(21)) == 42
    assert ray.get([double.remote(i) for i in range(20)]) == [2 * i for i in range(20)]


def test_num_returns_gives_a_list_of_refs(cluster):
    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert ray.get(refs) == [1, 2, 3]
    first, second = identity.options(num_returns=2).remote(("a", "b"))
    assert ray.get([first, second]) == ["a", "b"]


def test_calling_a_remote_function_directly_is_a_type_error(cluster):
    with pytest.raises(TypeError, match=r"double\.remote\(\)"):
        double(1)


def test_top_level_refs_are_resolved_nested_refs_stay_refs(cluster):
    ref = ray.put(5)
    assert ray.get(double.remote(ref)) == 10
    assert ray.get(identity.remote(x=ref)) == 5
    nested = ray.get(identity.remote([ref]))
    assert isinstance(nested[0], ray.ObjectRef)
    assert ray.get(nested[0]) == 5


def test_put_of_a_ref_is_a_type_error(cluster):
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.put(ray.put(1))


def test_task_error_is_also_the_original_exception(cluster):
    with pytest.raises(ValueError, match="boom") as info:
        ray.get(fail.remote("boom"))
    error = info.value
    assert isinstance(error, exc.TaskError) and isinstance(error, exc.RayTaskError)
    assert "fail" in str(error) and "boom" in str(error) and "Traceback" not in str(error).splitlines()[0]
    with pytest.raises(MyError, match="custom failure"):
        ray.get(fail_custom.remote())


def test_upstream_error_propagates_through_dependents(cluster):
    with pytest.raises(ValueError, match="upstream"):
        ray.get(double.remote(double.remote(fail.remote("upstream"))))


def test_get_timeout(cluster):
    ref = sleep.remote(2)
    with pytest.raises(exc.GetTimeoutError):
        ray.get(ref, timeout=0)
    with pytest.raises(TimeoutError):
        ray.get(ref, timeout=0.2)
    assert ray.wait([ref], timeout=0) == ([], [ref])  # it gave up before the task ended
    assert ray.get(ref) == 2


def test_get_of_a_non_ref_is_a_type_error(cluster):
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.get(42)
    with pytest.raises(TypeError, match="item 1"):
        ray.get([ray.put(1), 2])


def test_wait_semantics(cluster):
    slow, fast, failing = sleep.remote(3), sleep.remote(0), fail.remote("x")
    ready, not_ready = ray.wait([slow, fast, failing], num_returns=2, timeout=10)
    assert ready == [fast, failing] and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0)
    assert (ready, not_ready) == ([], [slow])
    assert ray.wait([]) == ([], [])
    with pytest.raises(ValueError, match="greater"):
        ray.wait([fast], num_returns=2)
    with pytest.raises(ValueError, match="unique"):
        ray.wait([fast, fast], num_returns=1)
    with pytest.raises(TypeError, match="list"):
        ray.wait(fast)
    ready, _ = ray.wait([fast, slow], num_returns=1)
    assert ready == [fast]


def test_arrays_from_get_are_read_only(cluster):
    big = np.arange(1_000_000, dtype=np.int64)
    small = np.arange(10)
    for array in (big, small):
        value = ray.get(ray.put(array))
        assert np.array_equal(value, array)
        assert not value.flags.writeable
    from_task = ray.get(identity.remote(big))
    assert np.array_equal(from_task, big) and not from_task.flags.writeable


def test_unpicklable_argument_names_it_and_its_position(cluster):
    import threading

    with pytest.raises(TypeError, match=r"argument 1 of double \(lock\)"):
        double.remote(1, threading.Lock())


def test_unknown_option_is_rejected_at_definition(cluster):
    with pytest.raises(ValueError, match=r"num_cpu.*num_cpus"):
        ray.remote(num_cpu=1)(lambda: None)
    with pytest.raises(ValueError, match="max_restarts"):
        double.options(max_restarts=1)


def test_reduce_raising_in_a_result_is_a_task_error(cluster):
    @ray.remote
    def bad_result():
        class Unpicklable:
            def __reduce__(self):
                raise RuntimeError("cannot reduce me")

        return Unpicklable()

    with pytest.raises(exc.TaskError, match="cannot reduce me"):
        ray.get(bad_result.remote())
    assert ray.get(double.remote(1)) == 2  # the worker survived


def test_cancel_a_queued_task(cluster):
    blockers = [sleep.options(num_cpus=4).remote(1.5)]
    queued = sleep.options(num_cpus=4).remote(0)
    ray.cancel(queued)
    with pytest.raises(exc.TaskCancelledError):
        ray.get(queued, timeout=10)
    ray.get(blockers)


def test_resources_are_enforced_and_visible(cluster):
    @ray.remote(num_cpus=4)
    def span():
        start = time.monotonic()
        time.sleep(0.5)
        return start, time.monotonic()

    (s1, e1), (s2, e2) = ray.get([span.remote(), span.remote()])
    assert e1 <= s2 or e2 <= s1, "two num_cpus=4 tasks overlapped on a 4-CPU node"
    assert ray.cluster_resources()["CPU"] == 4
    ref = sleep.options(num_cpus=2).remote(1.0)
    wait_until(lambda: ray.available_resources().get("CPU") == 2, 30, "the num_cpus=2 task to hold 2 of the 4 CPUs",
               details=ray.available_resources)
    ray.get(ref)


def test_custom_resources(cluster):
    assert ray.get(double.options(resources={"custom": 1}).remote(4)) == 8


def test_nested_tasks_release_their_cpu(cluster):
    @ray.remote(num_cpus=2)
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(6), timeout=50) == 8


def test_infeasible_request_warns_once(cluster):
    with pytest.warns(UserWarning, match="requires"):
        ref = double.options(num_cpus=64).remote(1)
    ray.cancel(ref)


def test_runtime_context_and_nodes(cluster):
    @ray.remote
    def where():
        context = ray.get_runtime_context()
        return context.get_node_id(), context.get_task_id()

    node_id, task_id = ray.get(where.remote())
    nodes = ray.nodes()
    assert [n["NodeID"] for n in nodes] == [node_id]
    assert nodes[0]["Alive"] and nodes[0]["Resources"]["CPU"] == 4
    assert task_id


def test_object_ref_future_and_await(cluster):
    import asyncio

    ref = double.remote(5)
    assert ref.future().result(timeout=10) == 10

    async def main():
        return await double.remote(6)

    assert asyncio.run(main()) == 12


def test_exception_that_cannot_be_pickled_still_reaches_the_caller(cluster):
    @ray.remote
    def raise_with_lock():
        import threading

        class Holder(Exception):
            pass

        error = Holder("holding a lock")
        error.lock = threading.Lock()
        raise error

    with pytest.raises(exc.TaskError, match="holding a lock"):
        ray.get(raise_with_lock.remote(), timeout=20)


def test_a_task_whose_worker_dies_is_retried_then_fails(cluster):
    import os as os_module

    @ray.remote(max_retries=2)
    def die():
        os_module._exit(1)

    with pytest.raises(exc.WorkerCrashedError, match=r"die.*retried 2 time"):
        ray.get(die.remote(), timeout=30)
    assert ray.get(double.remote(3)) == 6


def test_the_node_rejects_processes_without_the_cluster_token(cluster):
    import subprocess
    import sys
    import textwrap

    from actorcore import api

    program = textwrap.dedent("""
        import asyncio, sys
        from actorcore.kernel import ActorSystem, PeerLostError
        from actorcore.protocol import GetResources

        async def main(token):
            system = await ActorSystem.start(token=token, uds=False)
            try:
                return await system.ref_from_uri(sys.argv[1]).ask(GetResources(True), timeout=10)
            except PeerLostError as error:
                return f"rejected: {error}"
            finally:
                await system.shutdown()

        print(asyncio.run(main(None)))
        print(asyncio.run(main("a-guess")))
    """)
    result = subprocess.run([sys.executable, "-c", program, api._local.endpoints.scheduler],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("rejected:") and "token" in line for line in lines)


def test_many_nested_tasks_with_blocking_gets_finish(cluster):
    @ray.remote
    def leaf(x):
        return x

    @ray.remote
    def parent(x):
        return sum(ray.get([leaf.remote(x) for _ in range(3)]))

    # far more parents than CPUs: the driver pipelines them, each blocks in get on its leaves
    assert ray.get([parent.remote(i) for i in range(40)], timeout=50) == [3 * i for i in range(40)]
