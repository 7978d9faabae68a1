"""The MetricsExporter alone, in this process's actor system, with fake node actors: user
metrics of several processes summed per series, a process that stops reporting forgotten, and
the node's state rendered as read at the scrape."""

from __future__ import annotations

import asyncio

import pytest

from actorcore.kernel import Actor, ActorSystem
from actorcore.node.metrics_export import GetMetricsPort, MetricsExporter
from actorcore.protocol import (
    GetGcsStats,
    GetResources,
    GetSchedulerStats,
    GetStoreUsage,
    MetricsSnapshot,
    StoreUsage,
)
from actorcore.testing import async_wait_until

from .conftest import sample, scrape

pytestmark = pytest.mark.timeout(60)


class FakeNodeActor(Actor):
    """Answers the exporter's questions as a node's store, scheduler and GcsLink would."""

    async def receive(self, message):
        if isinstance(message, GetStoreUsage):
            return StoreUsage(objects=3, bytes=3000, capacity=10_000, spilled_objects=1, spilled_bytes=500)
        if isinstance(message, GetResources):
            return {"CPU": 1.0} if message.available else {"CPU": 4.0}
        if isinstance(message, GetSchedulerStats):
            return {"idle_workers": 2, "busy_workers": 3, "active_leases": 3, "leases_granted": 9,
                    "pending_leases": 1}
        if isinstance(message, GetGcsStats):
            return {"etcd_roundtrip_seconds": 0.004, "actor_restarts": 2}
        return None


@pytest.fixture
async def exporter():
    system = await ActorSystem.start(name="metrics-test", uds=False)
    fake = system.spawn(FakeNodeActor, name="fake")
    ref = system.spawn(MetricsExporter, "n1", "s1", "127.0.0.1", "127.0.0.1", 0, store=fake, scheduler=fake,
                       gcs=fake, process_expiry=1.0, name="metrics")
    port = await ref.ask(GetMetricsPort(), timeout=10)
    yield ref, port
    await system.shutdown(timeout=1.0)


def snapshot(process: str, jobs: float, gauge: float, buckets: list[float]) -> MetricsSnapshot:
    return MetricsSnapshot(process, {
        ("counter", "jobs"): {"description": "jobs", "tag_keys": ("k",), "boundaries": (),
                              "series": {("a",): jobs}},
        ("gauge", "depth"): {"description": "depth", "tag_keys": (), "boundaries": (), "series": {(): gauge}},
        ("histogram", "lat"): {"description": "lat", "tag_keys": (), "boundaries": (1.0,), "series": {(): buckets}},
    })


async def test_node_state_as_read_at_the_scrape(exporter):
    _, port = exporter
    samples = await asyncio.to_thread(scrape, port)
    labels = {"NodeId": "n1", "SessionName": "s1", "NodeAddress": "127.0.0.1"}
    assert sample(samples, "actorcore_object_store_used_bytes", **labels) == 3000
    assert sample(samples, "actorcore_object_store_capacity_bytes", **labels) == 10_000
    assert sample(samples, "actorcore_object_store_spilled_bytes", **labels) == 500
    assert sample(samples, "actorcore_object_store_objects", Location="SPILLED", **labels) == 1
    assert sample(samples, "actorcore_workers", State="BUSY", **labels) == 3
    assert sample(samples, "actorcore_leases_granted_total", **labels) == 9
    assert sample(samples, "actorcore_leases_pending", **labels) == 1
    assert sample(samples, "actorcore_resources", Name="CPU", State="AVAILABLE", **labels) == 1.0
    assert sample(samples, "actorcore_etcd_roundtrip_seconds", **labels) == 0.004
    assert sample(samples, "actorcore_actor_restarts_total", **labels) == 2


async def test_processes_summed_and_a_silent_one_forgotten(exporter):
    ref, port = exporter
    ref.tell(snapshot("p1", 2.0, 5.0, [1.0, 0.0, 0.5]))
    ref.tell(snapshot("p2", 3.0, 1.0, [0.0, 2.0, 7.0]))

    async def jobs() -> float | None:
        return sample(await asyncio.to_thread(scrape, port), "actorcore_jobs_total", k="a")

    await async_wait_until(lambda: _equals(jobs(), 5.0), 10, "both processes' counts summed")
    samples = await asyncio.to_thread(scrape, port)
    assert sample(samples, "actorcore_depth") == 6.0
    assert sample(samples, "actorcore_lat_bucket", le="1.0") == 1.0
    assert sample(samples, "actorcore_lat_bucket", le="+Inf") == 3.0
    assert sample(samples, "actorcore_lat_sum") == 7.5

    async def keep_p1_reporting():
        while True:
            ref.tell(snapshot("p1", 4.0, 5.0, [1.0, 0.0, 0.5]))
            await asyncio.sleep(0.2)

    reporter = asyncio.get_running_loop().create_task(keep_p1_reporting())
    try:
        await async_wait_until(lambda: _equals(jobs(), 4.0), 20, "p2, silent past its expiry, forgotten")
    finally:
        reporter.cancel()


async def _equals(value, expected) -> bool:
    return await value == expected
