"""The /metrics of a fresh two-node cluster: each task counts on the node that ran it, never as
pending on its owner's node once it ran elsewhere; an actor counts on its owner's node, ALIVE
then DEAD, and a restartable one made elsewhere is not pending on its owner's node once made; a
task whose worker was killed stops counting RUNNING there and counts FAILED on its
owner's node; an object pulled by another node is a transfer on both; a worker that ends right
after its task still reports its metrics."""

from __future__ import annotations

import os
import signal

import pytest

import actorcore
from actorcore.testing import wait_until
from actorcore.util.metrics import Counter
from actorcore.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .conftest import sample, scrape
from .test_export import driver_node, on_driver_node

pytestmark = pytest.mark.timeout(240)


@actorcore.remote
class Pinger:
    def ping(self):
        return "pong"


def test_tasks_and_actors_by_state_count_where_they_ran(metrics_cluster):
    node = driver_node()
    other = next(n for n in actorcore.nodes() if n["NodeID"] != node.node_id)
    elsewhere = NodeAffinitySchedulingStrategy(other["NodeID"], soft=False)
    here_labels, there_labels = {"NodeId": node.node_id}, {"NodeId": other["NodeID"]}

    def count(samples, state, name="actorcore_tasks", **labels):
        return sample(samples, name, State=state, **labels) or 0


    @actorcore.remote
    def value(x):
        return x

    @actorcore.remote
    def broken():
        raise ValueError("broken on purpose")

    assert actorcore.get([value.options(scheduling_strategy=elsewhere).remote(i) for i in range(3)]) == [0, 1, 2]
    assert actorcore.get(value.options(scheduling_strategy=on_driver_node()).remote(9)) == 9
    with pytest.raises(ValueError, match="broken on purpose"):
        actorcore.get(broken.options(scheduling_strategy=on_driver_node()).remote())
    pinger = Pinger.options(scheduling_strategy=elsewhere).remote()
    assert actorcore.get(pinger.ping.remote()) == "pong"

    def counted():
        here, there = scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])
        ready = (count(there, "FINISHED", **there_labels) == 5  # 3 tasks, the actor's creation, its call
                 and count(here, "FAILED", **here_labels) == 1
                 and count(here, "ALIVE", "actorcore_actors", **here_labels) == 1
                 and count(here, "FINISHED", **here_labels) == 1
                 and count(here, "PENDING_NODE_ASSIGNMENT", **here_labels) == 0)
        return here if ready else None

    # the driver's node counts what ran there; the tasks it sent to the other node are not pending here
    here = wait_until(counted, 60, "the tasks and the actor to be counted on their nodes",
                      details=lambda: (scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])))
    assert count(here, "RUNNING", **here_labels) == 0
    actorcore.kill(pinger)
    wait_until(lambda: count(scrape(node.metrics_export_port), "DEAD", "actorcore_actors", **here_labels) == 1,
               60, "the killed actor to be counted DEAD on its owner's node")


def test_a_task_whose_worker_died_stops_counting_running_and_counts_failed_once(metrics_cluster, tmp_path):
    node = driver_node()
    other = next(n for n in actorcore.nodes() if n["NodeID"] != node.node_id)
    here_labels, there_labels = {"NodeId": node.node_id}, {"NodeId": other["NodeID"]}
    pid_file = tmp_path / "pid"

    def count(samples, state, **labels):
        return sample(samples, "actorcore_tasks", State=state, **labels) or 0

    @actorcore.remote(max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(other["NodeID"], soft=False))
    def hangs(path):
        import threading

        with open(path, "w") as file:
            file.write(str(os.getpid()))
        threading.Event().wait()

    failed_before = count(scrape(node.metrics_export_port), "FAILED", **here_labels)
    ref = hangs.remote(str(pid_file))
    wait_until(lambda: count(scrape(other["MetricsExportPort"]), "RUNNING", **there_labels) == 1, 60,
               "the hanging task to be counted RUNNING where it runs",
               details=lambda: scrape(other["MetricsExportPort"]))
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    with pytest.raises(actorcore.exceptions.WorkerCrashedError):
        actorcore.get(ref, timeout=60)

    def settled():
        here, there = scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])
        return (count(there, "RUNNING", **there_labels), count(there, "FAILED", **there_labels),
                count(here, "FAILED", **here_labels) - failed_before) == (0, 0, 1)

    # the dead worker's node no longer counts it; its owner's node counts it FAILED
    wait_until(settled, 60, "the killed task to count FAILED once, on its owner's node",
               details=lambda: (scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])))


def test_a_restartable_actor_made_on_another_node_is_not_pending_on_its_owners_node(metrics_cluster):
    node = driver_node()
    other = next(n for n in actorcore.nodes() if n["NodeID"] != node.node_id)
    elsewhere = NodeAffinitySchedulingStrategy(other["NodeID"], soft=False)

    @actorcore.remote(resources={"nowhere": 1})
    def never_placed():
        return "unreachable"

    def pending_here():
        return sample(scrape(node.metrics_export_port), "actorcore_tasks", State="PENDING_NODE_ASSIGNMENT",
                      NodeId=node.node_id) or 0

    pinger = Pinger.options(max_restarts=1, scheduling_strategy=elsewhere).remote()
    assert actorcore.get(pinger.ping.remote()) == "pong"
    # Its owner sends what is still pending at its next send but one: by the time the task that
    # cannot be placed counts, the actor's constructor would count too if its owner still held it.
    with pytest.warns(UserWarning, match="stays pending until a node with these resources joins"):
        blocked = never_placed.remote()
    wait_until(lambda: pending_here() >= 1, 60, "the task that cannot be placed to count pending")
    assert pending_here() == 1
    actorcore.cancel(blocked)
    with pytest.raises(actorcore.exceptions.TaskCancelledError):
        actorcore.get(blocked, timeout=30)
    actorcore.kill(pinger)


def test_an_object_pulled_by_another_node_counts_as_a_transfer_on_both(metrics_cluster):
    node = driver_node()
    other = next(n for n in actorcore.nodes() if n["NodeID"] != node.node_id)

    @actorcore.remote(scheduling_strategy=NodeAffinitySchedulingStrategy(other["NodeID"], soft=False))
    def length(blob):
        return len(blob)

    def moved(samples, name, direction, node_id):
        return sample(samples, name, Direction=direction, NodeId=node_id) or 0

    size = 8 << 20
    here_before, there_before = scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])
    assert actorcore.get(length.remote(actorcore.put(b"x" * size))) == size
    here, there = scrape(node.metrics_export_port), scrape(other["MetricsExportPort"])
    for samples, before, direction, node_id in ((there, there_before, "IN", other["NodeID"]),
                                                (here, here_before, "OUT", node.node_id)):
        assert moved(samples, "actorcore_object_transfers_total", direction, node_id) - \
            moved(before, "actorcore_object_transfers_total", direction, node_id) == 1
        assert moved(samples, "actorcore_object_transfer_bytes_total", direction, node_id) - \
            moved(before, "actorcore_object_transfer_bytes_total", direction, node_id) >= size


def test_a_worker_that_ends_right_after_its_task_still_reports_its_metrics(metrics_cluster):
    node = driver_node()

    @actorcore.remote(max_calls=1, scheduling_strategy=on_driver_node())
    def last_words():
        Counter("last_words", "counted just before the worker ends").inc(3)
        return os.getpid()

    pid = actorcore.get(last_words.remote())
    wait_until(lambda: not _alive(pid), 60, "the worker to end after its one call (max_calls=1)")
    samples = wait_until(
        lambda: (lambda s: s if sample(s, "actorcore_last_words_total") is not None else None)(
            scrape(node.metrics_export_port)), 30, "the ended worker's counter on /metrics")
    assert sample(samples, "actorcore_last_words_total", NodeId=node.node_id) == 3.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
