"""Every node's /metrics on a real two-node cluster, scraped over HTTP and parsed with
prometheus_client: system metrics, user metrics from the driver, a task and an actor, and the
head's Prometheus file-service-discovery file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

import actorcore
from actorcore import runtime
from actorcore.testing import wait_until
from actorcore.util.metrics import Counter, Gauge, Histogram, flush
from actorcore.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .conftest import sample, scrape

pytestmark = pytest.mark.timeout(240)


def driver_node():
    node = runtime.current().node
    assert node.metrics_export_port, "the driver's node has no metrics port in its record"
    return node


def on_driver_node():
    return NodeAffinitySchedulingStrategy(driver_node().node_id, soft=False)


def test_object_store_bytes_grow_by_a_put(metrics_cluster):
    node = driver_node()
    before = scrape(node.metrics_export_port)
    used_before = sample(before, "actorcore_object_store_used_bytes", NodeId=node.node_id)
    objects_before = sample(before, "actorcore_object_store_objects", NodeId=node.node_id, Location="IN_MEMORY")
    capacity = sample(before, "actorcore_object_store_capacity_bytes", NodeId=node.node_id)
    assert capacity == 1 << 28
    size = 4 << 20
    ref = actorcore.put(b"x" * size)

    def grown():  # the put's space is taken first, its seal reaches the store after put returns (told)
        after = scrape(node.metrics_export_port)
        used = sample(after, "actorcore_object_store_used_bytes", NodeId=node.node_id)
        objects = sample(after, "actorcore_object_store_objects", NodeId=node.node_id, Location="IN_MEMORY")
        return (after, used) if used - used_before >= size and objects > objects_before else None

    after, used = wait_until(grown, 30, "the put's bytes and object in the store's metrics")
    assert size <= used - used_before < size + 64 * 1024  # the payload, its header and alignment
    assert sample(after, "actorcore_object_store_objects", NodeId=node.node_id, Location="IN_MEMORY") == \
        objects_before + 1
    assert sample(after, "actorcore_object_store_spilled_bytes", NodeId=node.node_id) == 0
    del ref


def test_node_state_metrics(metrics_cluster):
    node = driver_node()

    @actorcore.remote(scheduling_strategy=on_driver_node())
    def one():
        return 1

    assert actorcore.get([one.remote() for _ in range(4)]) == [1] * 4

    def timed():
        samples = scrape(node.metrics_export_port)
        return samples if sample(samples, "actorcore_etcd_roundtrip_seconds") else None

    samples = wait_until(timed, 60, "the node timed an etcd round trip")
    labels = {"NodeId": node.node_id, "SessionName": "default"}
    assert 0 < sample(samples, "actorcore_etcd_roundtrip_seconds", **labels) < 60
    assert sample(samples, "actorcore_resources", Name="CPU", State="TOTAL", **labels) == 2.0
    assert 0 <= sample(samples, "actorcore_resources", Name="CPU", State="AVAILABLE", **labels) <= 2.0
    assert sample(samples, "actorcore_leases_granted_total", **labels) >= 1
    idle = sample(samples, "actorcore_workers", State="IDLE", **labels)
    busy = sample(samples, "actorcore_workers", State="BUSY", **labels)
    assert idle + busy >= 1
    # the node's own actors (gcs, object store, scheduler, pool, metrics) started under its supervisor
    assert sample(samples, "actorcore_supervision_events_total", Kind="child_started", **labels) >= 5


@actorcore.remote
class Recorder:
    def __init__(self):
        self.jobs = Counter("jobs", "jobs done", tag_keys=("source",))
        self.queue = Gauge("queue_length", "items waiting", tag_keys=("queue",)).set_default_tags({"queue": "q1"})

    def record(self, done, waiting):
        self.jobs.inc(done, tags={"source": "actor"})
        self.queue.set(waiting)
        return True


@actorcore.remote
def task_records():
    Counter("jobs", "jobs done", tag_keys=("source",)).inc(tags={"source": "task"})
    latency = Histogram("latency_seconds", "how long", boundaries=[1.0, 10.0], tag_keys=("kind",))
    for value in (0.5, 5.0, 50.0):
        latency.observe(value, tags={"kind": "io"})
    return True


def test_user_metrics_from_a_task_and_an_actor(metrics_cluster):
    node = driver_node()
    recorder = Recorder.options(scheduling_strategy=on_driver_node()).remote()
    assert actorcore.get(recorder.record.remote(3, 7))
    assert actorcore.get(task_records.options(scheduling_strategy=on_driver_node()).remote())

    def recorded():
        samples = scrape(node.metrics_export_port)
        ready = (sample(samples, "actorcore_jobs_total", source="actor") is not None
                 and sample(samples, "actorcore_jobs_total", source="task") is not None
                 and sample(samples, "actorcore_latency_seconds_count") is not None)
        return samples if ready else None

    samples = wait_until(recorded, 60, "the task's and the actor's metrics reached the node")
    labels = {"NodeId": node.node_id, "SessionName": "default"}
    assert sample(samples, "actorcore_jobs_total", source="actor", **labels) == 3.0
    assert sample(samples, "actorcore_jobs_total", source="task", **labels) == 1.0
    assert sample(samples, "actorcore_queue_length", queue="q1", **labels) == 7.0
    assert sample(samples, "actorcore_latency_seconds_bucket", kind="io", le="1.0", **labels) == 1.0
    assert sample(samples, "actorcore_latency_seconds_bucket", kind="io", le="10.0", **labels) == 2.0
    assert sample(samples, "actorcore_latency_seconds_bucket", kind="io", le="+Inf", **labels) == 3.0
    assert sample(samples, "actorcore_latency_seconds_sum", kind="io", **labels) == 55.5
    assert sample(samples, "actorcore_latency_seconds_count", kind="io", **labels) == 3.0
    # the other node has none of them
    other_port = _other_node_port(metrics_cluster, node.node_id)
    assert sample(scrape(other_port), "actorcore_jobs_total", source="actor") is None
    actorcore.kill(recorder)


def test_an_inc_from_two_processes_is_summed(metrics_cluster):
    """As Ray exports by default (worker ids dropped, values summed per node)."""
    node = driver_node()
    shared = Counter("shared_events", "counted by the driver and a task")
    shared.inc(2)
    flush()

    @actorcore.remote(scheduling_strategy=on_driver_node())
    def count_one():
        Counter("shared_events", "counted by the driver and a task").inc()
        return True

    assert actorcore.get(count_one.remote())
    wait_until(lambda: sample(scrape(node.metrics_export_port), "actorcore_shared_events_total",
                              NodeId=node.node_id) == 3.0,
               60, "the driver's 2 and the task's 1 summed on the node")


@actorcore.remote(max_restarts=1)
class Restartable:
    def pid(self):
        return os.getpid()


def test_an_actor_restart_is_counted_on_its_owners_node(metrics_cluster):
    node = driver_node()
    labels = {"NodeId": node.node_id}
    before = sample(scrape(node.metrics_export_port), "actorcore_actor_restarts_total", **labels) or 0
    actor = Restartable.options(scheduling_strategy=on_driver_node()).remote()
    first = actorcore.get(actor.pid.remote())
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: _new_pid(actor, first), 60, "the actor restarted in a new process")
    assert sample(scrape(node.metrics_export_port), "actorcore_actor_restarts_total", **labels) == before + 1
    actorcore.kill(actor)


def _new_pid(actor, old: int) -> bool:
    try:
        return actorcore.get(actor.pid.remote(), timeout=10) != old
    except (actorcore.exceptions.RayActorError, actorcore.exceptions.GetTimeoutError):
        return False


def _discovery(metrics_cluster) -> list:
    path = metrics_cluster.home / "prom_metrics_service_discovery.json"
    return json.loads(path.read_text()) if path.exists() else []


def _other_node_port(metrics_cluster, node_id: str) -> int:
    targets = wait_until(lambda: [t for group in _discovery(metrics_cluster) for t in group["targets"]
                                  if not _serves(t, node_id)], 60, "the other node in the service-discovery file")
    return int(targets[0].rsplit(":", 1)[1])


def _serves(target: str, node_id: str) -> bool:
    host, port = target.rsplit(":", 1)
    return sample(scrape(int(port), host), "actorcore_object_store_capacity_bytes", NodeId=node_id) is not None


def test_the_head_writes_a_file_sd_of_every_node(metrics_cluster):

    def both_listed():
        content = _discovery(metrics_cluster)
        return content if content and len(content[0]["targets"]) == 2 else None

    content = wait_until(both_listed, 60, "both nodes in the service-discovery file")
    assert [set(group) for group in content] == [{"labels", "targets"}]
    assert content[0]["labels"] == {"job": "actorcore"}
    served = set()
    for target in content[0]["targets"]:
        host, port = target.rsplit(":", 1)
        samples = scrape(int(port), host)
        served |= {dict(labels)["NodeId"] for name, labels in samples
                   if name == "actorcore_object_store_capacity_bytes"}
    assert served == metrics_cluster.node_ids()
    listed = {f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}" for node in actorcore.nodes()}
    assert listed == set(content[0]["targets"])


def test_the_file_sd_goes_when_the_cluster_stops(metrics_cluster):
    path = metrics_cluster.home / "prom_metrics_service_discovery.json"
    assert path.exists()
    actorcore.shutdown()
    subprocess.run([sys.executable, "-m", "actorcore", "stop"], env=metrics_cluster.env, capture_output=True,
                   timeout=90, check=True)
    assert not path.exists()

