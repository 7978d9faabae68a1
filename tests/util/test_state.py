"""The state API's task listing on a real local node: tasks run by workers and submitted by the
driver, merged into one record per attempt, with Ray's states, fields and filters."""

from __future__ import annotations

import os

import pytest

import actorcore as ray
from actorcore.testing import wait_until
from actorcore.util.state import TaskState, list_tasks

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("cluster")]


@ray.remote
def square(x):
    return x * x, os.getpid()


@ray.remote
def fails():
    raise KeyError("no such key")


def _listed(name: str, count: int, state: str) -> list[TaskState]:
    tasks = list_tasks(filters=[("name", "=", name), ("state", "=", state)], limit=1000)
    return tasks if len(tasks) == count else []


def test_finished_and_failed_tasks_are_listed_with_their_worker_and_error():
    results = ray.get([square.remote(i) for i in range(3)])
    with pytest.raises(KeyError):
        ray.get(fails.remote())
    done = wait_until(lambda: _listed("square", 3, "FINISHED"), 30, "the 3 finished tasks to be listed",
                      details=lambda: list_tasks(limit=1000))
    pids = {pid for _, pid in results}
    for task in done:
        assert (task.type, task.attempt_number, task.func_or_class_name) == ("NORMAL_TASK", 0, "square")
        assert task.node_id == ray.get_runtime_context().get_node_id()
        assert task.worker_pid in pids
        assert task.creation_time_ms <= task.start_time_ms <= task.end_time_ms
        assert [e["state"] for e in task.events] == ["PENDING_NODE_ASSIGNMENT", "RUNNING", "FINISHED"]
        assert task["state"] == "FINISHED"  # read as a mapping too, as Ray's
    failed = wait_until(lambda: _listed("fails", 1, "FAILED"), 30, "the failed task to be listed")[0]
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert "no such key" in failed.error_message


def test_limit_and_filters_are_checked():
    ray.get([square.remote(i) for i in range(4)])
    wait_until(lambda: len(list_tasks(filters=[("name", "=", "SQUARE")], limit=1000)) >= 4, 30,
               "the tasks to be listed (the filter's value compares without case)")
    assert len(list_tasks(filters=[("name", "=", "square")], limit=2)) == 2
    assert all(t.name != "square" for t in list_tasks(filters=[("name", "!=", "square")], limit=1000))
    with pytest.raises(ValueError, match="'colour' is not a filterable field of tasks"):
        list_tasks(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="unsupported predicate '>'"):
        list_tasks(filters=[("name", ">", "a")])
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        list_tasks(limit=0)


def test_a_local_node_lists_its_driver_workers_and_objects():
    from actorcore.util.state import list_nodes, list_objects, list_workers

    ref = ray.put("local object")
    ray.get(square.remote(2))
    (node,) = list_nodes()
    assert node.node_id == ray.get_runtime_context().get_node_id() and node.state == "ALIVE"
    workers = list_workers()
    assert [w.pid for w in workers if w.worker_type == "DRIVER"] == [os.getpid()]
    assert any(w.worker_type == "WORKER" and w.node_id == node.node_id for w in workers)
    (obj,) = list_objects(filters=[("object_id", "=", ref.hex())])
    assert (obj.pid, obj.type, obj.reference_type) == (os.getpid(), "DRIVER", "LOCAL_REFERENCE")
