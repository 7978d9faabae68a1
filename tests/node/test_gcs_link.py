"""The GcsLink's etcd writes against a real etcd: who may change an actor record or a name, and
who may register under a node id (docs/architecture.md, "Failure semantics")."""

from __future__ import annotations

import json

import pytest

from actorcore.gcs import schema
from actorcore.gcs.etcd_client import EtcdClient
from actorcore.gcs.schema import ONLY_IF_WORKER
from actorcore.gcs.sealed import SealedEtcd
from actorcore.node.gcs_link import GcsLink
from actorcore.protocol import ActorStateChanged, GetActorRecord, ListNodes, LookupActor, RegisterActor
from actorcore.testing import async_wait_until

pytestmark = pytest.mark.timeout(60)

CLUSTER = "fencing"
TOKEN = "liveness-test-token"  # the cluster token: etcd records are sealed with it
OLD, NEW = "actor://old-worker", "actor://new-worker"  # two incarnations' worker URIs


@pytest.fixture
async def etcd(etcd_server):
    client = SealedEtcd(await EtcdClient.connect(etcd_server.endpoint), TOKEN)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def gcs(system, etcd_server):
    ref = system.spawn(GcsLink, etcd_server.endpoint, CLUSTER, "node-1", {"resources": {"CPU": 1.0}}, name="gcs",
                       token=TOKEN)
    yield ref
    await system.stop(ref)


async def _named_actor_restarted_elsewhere(gcs) -> None:
    """A named actor whose first incarnation (OLD) was replaced by a second (NEW), as its owner
    does when the first one's node is declared dead."""
    assert await gcs.ask(RegisterActor("a1", "ns", "svc", b"handle"), timeout=10) is True
    gcs.tell(ActorStateChanged("a1", {"actor_id": "a1", "state": "ALIVE", "worker": OLD, "restarts": 0}))
    gcs.tell(ActorStateChanged("a1", {"actor_id": "a1", "state": "RESTARTING", "restarts": 1}))
    gcs.tell(ActorStateChanged("a1", {"actor_id": "a1", "state": "ALIVE", "worker": NEW, "restarts": 1}))


async def _record(gcs) -> dict:
    return await gcs.ask(GetActorRecord("a1"), timeout=10) or {}


async def test_a_stale_incarnation_cannot_mark_the_newer_one_dead_or_free_its_name(gcs, etcd):
    await _named_actor_restarted_elsewhere(gcs)
    # The old process learns late that its owner is gone (a healed partition) and says so.
    gcs.tell(ActorStateChanged("a1", {"actor_id": "a1", "state": "DEAD", "death_cause": "its owner died",
                                      ONLY_IF_WORKER: OLD}))
    # A later change by the current incarnation: changes are made in order, so once it shows,
    # the stale one was decided.
    gcs.tell(ActorStateChanged("a1", {"note": "after", ONLY_IF_WORKER: NEW}))
    record = await async_wait_until(lambda: _after(gcs), 20, "the current incarnation's change")
    assert record["state"] == "ALIVE" and record["worker"] == NEW and "death_cause" not in record
    assert ONLY_IF_WORKER not in record
    assert await etcd.get(schema.key(CLUSTER, "named", "ns", "svc")) == b"a1"
    assert await gcs.ask(LookupActor("ns", "svc"), timeout=10) == (b"handle", (NEW, None))


async def _after(gcs):
    record = await _record(gcs)
    return record if record.get("note") == "after" else None


async def test_the_current_incarnation_records_its_death_and_frees_its_name(gcs, etcd):
    await _named_actor_restarted_elsewhere(gcs)
    gcs.tell(ActorStateChanged("a1", {"actor_id": "a1", "state": "DEAD", "death_cause": "its owner died",
                                      ONLY_IF_WORKER: NEW}))
    record = await async_wait_until(lambda: _dead(gcs), 20, "the actor recorded dead")
    assert record["death_cause"] == "its owner died" and record["restarts"] == 1
    await async_wait_until(lambda: _name_freed(etcd), 20, "the name freed")
    assert await gcs.ask(LookupActor("ns", "svc"), timeout=10) is None


async def _dead(gcs):
    record = await _record(gcs)
    return record if record.get("state") == "DEAD" else None


async def _name_freed(etcd):
    return await etcd.get(schema.key(CLUSTER, "named", "ns", "svc")) is None


async def test_a_change_made_meanwhile_by_another_writer_is_kept(gcs, etcd):
    """A change is merged into what etcd holds now, not into what this link wrote last."""
    await _named_actor_restarted_elsewhere(gcs)
    await async_wait_until(lambda: _worker_is(gcs, NEW), 20, "the new incarnation recorded")
    key = schema.key(CLUSTER, "actors", "a1")
    stored = json.loads(await etcd.get(key))
    await etcd.put(key, json.dumps({**stored, "pid": 4242}).encode())  # e.g. another node's link
    gcs.tell(ActorStateChanged("a1", {"note": "after"}))
    record = await async_wait_until(lambda: _after(gcs), 20, "the change")
    assert record["pid"] == 4242 and record["worker"] == NEW


async def _worker_is(gcs, worker):
    return (await _record(gcs)).get("worker") == worker


async def test_a_node_declared_dead_cannot_register_again_under_its_id(system, etcd_server, etcd):
    await etcd.put(schema.key(CLUSTER, "dead", "node-9"), json.dumps({"node_id": "node-9", "died": 1.0}).encode())
    gcs = system.spawn(GcsLink, etcd_server.endpoint, CLUSTER, "node-9", {}, name="gcs-9", token=TOKEN)
    try:
        with pytest.raises(RuntimeError, match=r"node node-9 was declared dead .* start it with a new id"):
            await gcs.ask(ListNodes(), timeout=20)
        assert await etcd.get(schema.key(CLUSTER, "nodes", "node-9")) is None
        assert await etcd.get(schema.key(CLUSTER, "dead", "node-9")) is not None
    finally:
        await system.stop(gcs)


async def test_an_asked_change_is_answered_once_it_is_written(gcs, etcd):
    # A detached actor's process asks this before its owner hears the actor is made: whoever
    # the owner hands it to then reads where it lives, even with the owner gone.
    assert await gcs.ask(RegisterActor("a1", "ns", "svc", b"handle"), timeout=10) is True
    fields = {"actor_id": "a1", "state": "ALIVE", "detached": True, "worker": NEW, "pid": 42}
    for attempt in range(5):  # a read right after a told change would often come first
        assert await gcs.ask(ActorStateChanged("a1", {**fields, "restarts": attempt}), timeout=10) is None
        record = json.loads(await etcd.get(schema.key(CLUSTER, "actors", "a1")))
        assert record["restarts"] == attempt and record["worker"] == NEW and record["detached"] is True
        assert record["name"] == "svc"  # merged into what was there
