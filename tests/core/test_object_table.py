"""The object table in process: reference counting, pins, payloads, lineage, with fake refs."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from actorcore import exceptions as exc
from actorcore.core.object_table import ObjectTable
from actorcore.core.payloads import from_payload
from actorcore.core.pending import PendingTask
from actorcore.kernel import PeerLostError
from actorcore.object_ref import ObjectRef
from actorcore.objects import serialize
from actorcore.protocol import Failed, FreeObjects, GetObject, Inline, InShm, LeaseBlocked, LeaseUnblocked, TaskSpec
from actorcore.testing import async_wait_until

from .fakes import FakeSystem, cluster_of, settle

pytestmark = pytest.mark.usefixtures("no_dangling_tasks")


def inline(value) -> Inline:
    return Inline(serialize(value).to_bytes())


def make_table(system: FakeSystem, cluster) -> ObjectTable:
    ids = itertools.count(1)
    return ObjectTable(system, system.ref("core"), "n1", system.ref("store"), system.ref("scheduler"), cluster,
                       lambda kind: f"o{kind}{next(ids)}")


@pytest.fixture
async def system():
    return FakeSystem(asyncio.get_running_loop())


@pytest.fixture
async def table(system):
    return make_table(system, cluster_of(system, {"CPU": 2}))


def task_taking(*args) -> PendingTask:
    spec = TaskSpec("t1", "f", "f", list(args), {}, 1, None)
    return PendingTask(spec, ((), None), 0, False, ["t1.0"], [])


async def test_an_object_is_freed_when_its_last_ref_is_dropped(table):
    ref = table.put(41)
    object_id = ref.id
    other = ObjectRef(object_id, ref.owner, table)
    table.local_ref(object_id)  # counted on the loop
    await settle()
    del ref, other
    await settle()
    assert object_id not in table


async def test_an_object_whose_ref_left_the_process_is_never_freed(table):
    ref = table.put("shared")
    object_id = ref.id
    table.mark_escaped(object_id)
    del ref
    assert from_payload(table[object_id].payload) == "shared"


async def test_a_pending_object_without_refs_is_freed_once_made(table):
    table.expect(["t9.0"])
    ref = ObjectRef("t9.0", table.owner, table)
    waiter = table.payload_future(ref)
    del ref
    assert "t9.0" in table  # not made yet: kept for the task's result
    table.resolve("t9.0", inline(3))
    assert from_payload(waiter.result()) == 3
    assert "t9.0" not in table


async def test_a_pinned_argument_outlives_its_refs_until_the_task_unpins_it(table):
    ref = table.put([1, 2])
    object_id = ref.id
    task = task_taking(ref, inline("plain"))
    assert await table.resolve_args(task) is None
    assert [from_payload(a) for a in task.spec.args] == [[1, 2], "plain"]
    del ref
    assert object_id in table
    table.unpin(task)
    assert object_id not in table


async def test_a_failed_argument_fails_the_task_with_its_error(table):
    table.expect(["t2.0"])
    ref = ObjectRef("t2.0", table.owner, table)
    table.resolve("t2.0", Failed(exc.TaskError("g", "traceback", ValueError("boom"))))
    failed = await table.resolve_args(task_taking(ref))
    assert type(failed) is Failed and isinstance(failed.error, exc.TaskError)


async def test_an_object_of_another_owner_is_asked_of_it_and_its_death_is_an_owner_died_error(system, table):
    owner = system.ref("other-core")
    answered = table.payload_future(ObjectRef("x1", owner))
    lost = table.payload_future(ObjectRef("x2", owner))
    (first, reply_1), (second, reply_2) = owner.asked(GetObject)
    assert (first.object_id, second.object_id) == ("x1", "x2")
    reply_1.set_result(inline("value"))
    reply_2.set_exception(PeerLostError("gone"))
    await settle()
    assert from_payload(answered.result()) == "value"
    assert isinstance(lost.result().error, exc.OwnerDiedError)


async def test_a_freed_object_of_this_owner_is_lost(table):
    payload = await table.payload_future(ObjectRef("gone.0", table.owner))
    assert isinstance(payload.error, exc.ObjectLostError)


async def test_get_from_a_user_thread_waits_for_the_object_and_marks_its_lease_blocked(system, table):
    table.expect(["t3.0"])
    ref = ObjectRef("t3.0", table.owner, table)
    table.current_lease = 7
    values = asyncio.ensure_future(asyncio.to_thread(table.get, [ref], 30))
    await async_wait_until(lambda: table["t3.0"].waiters, 10, "the get to wait on the loop", interval=0.001)
    assert system.ref("scheduler").told == [LeaseBlocked(7)]
    table.resolve("t3.0", inline("done"))
    assert await values == ["done"]
    assert system.ref("scheduler").told == [LeaseBlocked(7), LeaseUnblocked(7)]


async def test_wait_splits_ready_from_pending_refs_in_their_order(table):
    ready = table.put(1)
    table.expect(["t4.0"])
    pending = ObjectRef("t4.0", table.owner, table)
    assert await asyncio.to_thread(table.wait, [pending, ready], 1, 0) == ([ready], [pending])
    assert await asyncio.to_thread(table.wait, [pending, ready], 2, 0) == ([ready], [pending])


# -- large objects in a cluster -------------------------------------------------------------

NODES = {node_id: {"resources": {"CPU": 1}, "uris": {"object_store": f"store-{node_id}"}}
         for node_id in ("n1", "n2", "n3")}


@pytest.fixture
async def cluster_table(system):
    return make_table(system, cluster_of(system, {"CPU": 1}, nodes=dict(NODES)))


def own_large(table: ObjectTable, object_id: str, node: str, replicas: tuple = ()) -> ObjectRef:
    table.expect([object_id])
    table.resolve(object_id, InShm(f"seg-{node}-{object_id}", 1 << 20, node, replicas))
    return ObjectRef(object_id, table.owner, table)


async def test_a_large_object_freed_is_freed_on_every_node(system, cluster_table):
    ref = own_large(cluster_table, "t5.0", "n2")
    del ref
    for store in ("store", "store-n2", "store-n3"):  # (this node's own store is "store")
        assert system.ref(store).told == [FreeObjects(["t5.0"])]


async def test_when_the_primary_copy_dies_a_replica_takes_its_place(cluster_table):
    ref = own_large(cluster_table, "t6.0", "n2", replicas=("n3",))
    cluster_table.drop_dead_locations(("n2",))
    payload = cluster_table[ref.id].payload
    assert (payload.node, payload.replicas) == ("n3", ())


async def test_a_lost_object_is_made_again_by_its_task_or_else_is_lost(cluster_table):
    remade = []
    cluster_table.remake = lambda task: remade.append(task) or True
    with_lineage = own_large(cluster_table, "t7.0", "n2")
    task = task_taking()
    cluster_table.keep_lineage("t7.0", task)
    without = own_large(cluster_table, "t8.0", "n2")
    cluster_table.drop_dead_locations(("n2",))
    assert remade == [task] and cluster_table[with_lineage.id].payload is None  # `get` waits for it
    assert isinstance(cluster_table[without.id].payload.error, exc.ObjectLostError)


async def test_a_result_that_arrives_after_its_nodes_death_is_made_again(cluster_table):
    remade = []
    cluster_table.remake = lambda task: remade.append(task) or True
    cluster_table._cluster.dead_nodes.add("n2")  # the death was seen before the result came
    cluster_table.expect(["t9.0"])
    cluster_table.keep_lineage("t9.0", task := task_taking())
    cluster_table.resolve("t9.0", InShm("seg-n2-t9.0", 1 << 20, "n2"))
    ref = ObjectRef("t9.0", cluster_table.owner, cluster_table)
    await asyncio.sleep(0)  # handled as the death is, right after the result
    assert remade == [task] and cluster_table[ref.id].payload is None


async def test_describe_lists_each_owned_object_with_its_size_status_and_why_it_is_kept(table):
    kept = table.put("kept")
    table.expect(["t5.0"])  # a task's return, not made yet
    escaped = table.put("sent away")
    table.mark_escaped(escaped.id)
    table.release(escaped.id)
    await settle()
    rows = {row["object_id"]: row for row in table.describe()}
    assert rows[kept.id]["reference_type"] == "LOCAL_REFERENCE" and rows[kept.id]["task_status"] == "FINISHED"
    assert rows[kept.id]["object_size"] == len(table[kept.id].payload.data) and rows[kept.id]["node_id"] == "n1"
    assert not rows[kept.id]["in_shared_memory"] and rows[kept.id]["local_refs"] == 1
    assert (rows["t5.0"]["task_status"], rows["t5.0"]["object_size"]) == ("PENDING", None)
    assert rows[escaped.id]["reference_type"] == "CAPTURED_IN_OBJECT"
