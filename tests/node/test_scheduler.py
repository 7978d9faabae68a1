"""The node's Scheduler in one process: leases, queueing, returns, dead workers and owners,
lent CPUs, infeasible requests, spillback to other nodes, and resources held with no worker.

The Scheduler is the real actor in a real (socket-less) actor system; its collaborators —
the WorkerPool, the workers, the owners that ask for leases, the GcsLink and the other
nodes' Schedulers — are `Fake` actors that record what they are sent. Nothing sleeps: after
`settle` every message the Scheduler has sent so far is in the fakes' inboxes.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from actorcore.kernel import Actor, ActorSystem
from actorcore.node.scheduler import Scheduler
from actorcore.protocol import (
    ActorWorkerExited,
    AttachPool,
    ClusterView,
    GetResources,
    HoldResources,
    LeaseBlocked,
    LeaseGranted,
    LeaseUnblocked,
    ListWorkerProcesses,
    NodeLoad,
    ReleaseHeldResources,
    RequestLease,
    ReturnLease,
    Spillback,
    StartWorkers,
    WorkerDied,
    WorkerReady,
)

pytestmark = pytest.mark.timeout(30)

NODE = "node-a"


def attach_pool(pool: Fake, prestart: int):
    """What the node's start-up tells the Scheduler: its pool, and how many workers to keep."""
    return AttachPool(pool.ref, prestart)


def workers_asked(message) -> int | None:
    """How many workers ``message`` (to the pool) asks to start; None if it asks nothing."""
    return message.count if isinstance(message, StartWorkers) else None


class _Sync:
    """Answered by a `Fake` without being recorded: every message sent to it before is in."""


class _Recorder(Actor):
    def __init__(self, inbox: list) -> None:
        self.inbox = inbox

    async def receive(self, message):
        if not isinstance(message, _Sync):
            self.inbox.append(message)


class Fake:
    """A collaborator of the Scheduler: an actor that records every message it is sent."""

    def __init__(self, system: ActorSystem, name: str) -> None:
        self.system = system
        self.inbox: list = []
        self.ref = system.spawn(_Recorder, self.inbox, name=name)
        self.stopped = False

    async def stop(self) -> None:
        """End this actor (those watching it get `Terminated`)."""
        self.stopped = True
        await self.system.stop(self.ref)

    def take(self) -> list:
        """The messages received since the last `take`."""
        messages, self.inbox[:] = list(self.inbox), []
        return messages


class Node:
    """A Scheduler with fake collaborators, and the moves of a test."""

    def __init__(self, system: ActorSystem, total: dict, *, cluster: bool = False) -> None:
        self.system = system
        self.pool = Fake(system, "pool")
        self.owner = Fake(system, "owner")
        self.gcs = Fake(system, "gcs") if cluster else None
        self.scheduler = system.spawn(Scheduler, total, self.pool.ref, node_id=NODE,
                                      gcs=self.gcs.ref if cluster else None, name="scheduler")
        self._pids = itertools.count(1001)
        self.workers: dict[int, Fake] = {}

    def request(self, owner: Fake | None = None, *, for_actor: bool = False, spillable: bool = True,
                **shape: float) -> asyncio.Future:
        """Ask for a lease of ``shape``; the future resolves with the Scheduler's answer."""
        owner = owner or self.owner
        message = RequestLease(tuple(shape.items()), owner.ref, for_actor=for_actor, spillable=spillable)
        return self.scheduler.ask(message, timeout=None)

    def worker_ready(self) -> int:
        """A new worker process says it is ready; returns its pid."""
        pid = next(self._pids)
        self.workers[pid] = Fake(self.system, f"worker-{pid}")
        self.scheduler.tell(WorkerReady(pid, self.workers[pid].ref))
        return pid

    def tell(self, message) -> None:
        self.scheduler.tell(message)

    async def available(self) -> dict:
        return await self.scheduler.ask(GetResources(available=True))

    async def settle(self) -> None:
        """Wait until the Scheduler has handled everything sent to it so far, and the fakes
        everything it sent them. (A load it publishes is sent from a callback scheduled
        before this ask's answer, so it is sent by then too.)"""
        await self.scheduler.ask(GetResources(available=True))
        fakes = [self.pool, self.owner, *self.workers.values(), *([self.gcs] if self.gcs else [])]
        await asyncio.gather(*(fake.ref.ask(_Sync()) for fake in fakes if not fake.stopped))

    async def pool_asked(self) -> int:
        """How many workers the pool was asked for since the last call."""
        await self.settle()
        counts = [workers_asked(m) for m in self.pool.take()]
        return sum(c for c in counts if c is not None)


@pytest.fixture
def node(system):
    return Node(system, {"CPU": 2.0, "GPU": 0.0, "memory": 100.0})


async def granted(future: asyncio.Future) -> LeaseGranted:
    answer = await asyncio.wait_for(future, 5)
    assert isinstance(answer, LeaseGranted), answer
    return answer


async def assert_waiting(node: Node, *futures: asyncio.Future) -> None:
    await node.settle()
    assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]


# -- granting ---------------------------------------------------------------------------------

async def test_a_lease_is_granted_with_an_idle_worker_and_holds_its_resources(node):
    pid = node.worker_ready()
    grant = await granted(node.request(CPU=1, memory=30))
    assert (grant.pid, grant.worker, grant.node_id) == (pid, node.workers[pid].ref, NODE)
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0, "memory": 70.0}
    assert await node.scheduler.ask(GetResources(available=False)) == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


async def test_without_an_idle_worker_the_pool_is_asked_once_per_missing_worker(node):
    first, second = node.request(CPU=1), node.request(CPU=1)
    await assert_waiting(node, first, second)
    assert await node.pool_asked() == 2
    node.tell(ReturnLease(999))  # the Scheduler looks at its queue again: the two are on their way
    await assert_waiting(node, first, second)
    assert await node.pool_asked() == 0
    node.worker_ready()
    grant = await granted(first)
    assert not second.done()
    node.worker_ready()
    assert (await granted(second)).lease_id != grant.lease_id
    assert await node.pool_asked() == 0


async def test_requests_wait_first_come_first_served_while_resources_are_exhausted(node):
    for _ in range(3):
        node.worker_ready()
    a = node.request(CPU=2)
    b = node.request(CPU=2)
    c = node.request(CPU=2)
    lease_a = await granted(a)
    await assert_waiting(node, b, c)
    node.tell(ReturnLease(lease_a.lease_id))
    lease_b = await granted(b)
    await assert_waiting(node, c)
    node.tell(ReturnLease(lease_b.lease_id))
    lease_c = await granted(c)
    assert len({lease_a.lease_id, lease_b.lease_id, lease_c.lease_id}) == 3
    assert await node.available() == {"CPU": 0.0, "GPU": 0.0, "memory": 100.0}


async def test_a_request_that_fits_is_not_held_up_by_an_earlier_one_that_does_not(node):
    node.worker_ready()
    node.worker_ready()
    await granted(node.request(CPU=1))
    big = node.request(CPU=2)
    small = node.request(CPU=1)
    await granted(small)
    await assert_waiting(node, big)


async def test_a_returned_task_worker_is_reused_an_actor_worker_is_not(node):
    pid = node.worker_ready()
    task_lease = await granted(node.request(CPU=1))
    node.tell(ReturnLease(task_lease.lease_id))
    actor_lease = await granted(node.request(CPU=1, for_actor=True))
    assert actor_lease.pid == pid  # the task's worker went back to the idle list
    node.tell(ReturnLease(actor_lease.lease_id))  # the actor's process is not reused
    again = node.request(CPU=1)
    await assert_waiting(node, again)
    assert await node.pool_asked() == 1
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


async def test_a_lease_returned_with_a_dead_worker_frees_resources_not_the_worker(node):
    node.worker_ready()
    lease = await granted(node.request(CPU=1))
    node.tell(ReturnLease(lease.lease_id, worker_died=True))
    waiting = node.request(CPU=1)
    await assert_waiting(node, waiting)
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


async def test_returning_an_unknown_or_returned_lease_changes_nothing(node):
    node.worker_ready()
    lease = await granted(node.request(CPU=1))
    node.tell(ReturnLease(lease.lease_id))
    node.tell(ReturnLease(lease.lease_id))
    node.tell(ReturnLease(999))
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


async def test_fractional_resources_add_up_exactly_enough(node):
    for _ in range(10):
        node.worker_ready()
    leases = [await granted(node.request(CPU=0.2)) for _ in range(10)]
    assert len({g.pid for g in leases}) == 10
    eleventh = node.request(CPU=0.2)
    await assert_waiting(node, eleventh)


# -- workers and owners that die ----------------------------------------------------------------

async def test_a_dead_workers_lease_is_released_and_its_actors_owner_told(node):
    actor_pid = node.worker_ready()
    task_pid = node.worker_ready()
    actor_lease = await granted(node.request(CPU=1, for_actor=True))
    task_lease = await granted(node.request(CPU=1))
    assert (actor_lease.pid, task_lease.pid) == (actor_pid, task_pid)
    waiting = node.request(CPU=1)
    await assert_waiting(node, waiting)
    node.tell(WorkerDied(actor_pid, "it was killed by SIGKILL"))
    node.tell(WorkerDied(task_pid, "it exited with code 1"))
    await node.settle()
    assert node.owner.take() == [ActorWorkerExited(actor_lease.lease_id, actor_pid, "it was killed by SIGKILL")]
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}
    assert await node.pool_asked() == 1  # for the waiting request: both workers are gone
    node.worker_ready()
    await granted(waiting)


async def test_a_worker_that_dies_while_starting_is_asked_for_again(node):
    waiting = node.request(CPU=1)
    assert await node.pool_asked() == 1
    node.tell(WorkerDied(4242))  # never said it was ready
    await assert_waiting(node, waiting)
    assert await node.pool_asked() == 1
    node.worker_ready()
    await granted(waiting)


async def test_an_idle_worker_that_dies_is_not_leased(node):
    dead = node.worker_ready()
    alive = node.worker_ready()
    node.tell(WorkerDied(dead))
    assert (await granted(node.request(CPU=1))).pid == alive


async def test_a_dead_owners_leases_and_requests_are_dropped(system, node):
    other = Fake(system, "other-owner")
    node.worker_ready()
    node.worker_ready()
    task_lease = await granted(node.request(CPU=1))
    await granted(node.request(CPU=1, for_actor=True))
    queued = node.request(CPU=1)
    others = node.request(other, CPU=1)
    await assert_waiting(node, queued, others)
    await node.owner.stop()
    # The owner's task worker went back to the idle list and goes to the other owner.
    assert (await granted(others)).pid == task_lease.pid
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0, "memory": 100.0}
    more = node.request(other, CPU=1)  # the actor's worker was not put back: a new one is needed
    await assert_waiting(node, more, queued)
    assert await node.pool_asked() == 1


async def test_a_requester_that_gave_up_is_skipped(node):
    node.worker_ready()
    held = await granted(node.request(CPU=2))
    impatient = node.scheduler.ask(RequestLease((("CPU", 1.0),), node.owner.ref), timeout=0.01)
    with pytest.raises(TimeoutError):
        await impatient
    patient = node.request(CPU=1)
    node.tell(ReturnLease(held.lease_id))
    assert (await granted(patient)).pid == held.pid


# -- resources held with no worker (a job's entrypoint) -----------------------------------------

def hold(node: Node, hold_id: str, owner: Fake | None = None, **shape: float) -> asyncio.Future:
    return node.scheduler.ask(HoldResources(hold_id, tuple(shape.items()), (owner or node.owner).ref), timeout=None)


async def test_a_hold_takes_resources_at_once_when_they_are_free_and_gives_them_back(node):
    assert await asyncio.wait_for(hold(node, "job-a", CPU=1.5, memory=40), 5) == []
    assert await node.available() == {"CPU": 0.5, "GPU": 0.0, "memory": 60.0}
    node.worker_ready()
    too_big = node.request(CPU=1)  # a lease does not get what a hold holds
    await assert_waiting(node, too_big)
    node.tell(ReleaseHeldResources("job-a"))
    await granted(too_big)
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0, "memory": 100.0}


async def test_a_hold_waits_for_busy_resources_ahead_of_waiting_leases(node):
    node.worker_ready()
    node.worker_ready()
    busy = await granted(node.request(CPU=2))
    waiting = hold(node, "job-a", CPU=2)
    lease_behind = node.request(CPU=1)
    await assert_waiting(node, waiting, lease_behind)
    node.tell(ReturnLease(busy.lease_id))
    assert await asyncio.wait_for(waiting, 5) == []
    await assert_waiting(node, lease_behind)


async def test_a_hold_the_node_can_never_have_fails_at_once_naming_the_resource(node):
    with pytest.raises(ValueError, match=r"never hold 3 CPU \(the node has 2\), 1 Widget \(the node has 0\)"):
        await asyncio.wait_for(hold(node, "job-a", CPU=3, Widget=1), 5)
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


async def test_a_hold_of_gpus_holds_devices_by_id(system):
    node = Node(system, {"CPU": 2.0, "GPU": 2.0})
    assert await asyncio.wait_for(hold(node, "job-a", GPU=1), 5) == ["0"]
    assert await asyncio.wait_for(hold(node, "job-b", GPU=1), 5) == ["1"]
    node.tell(ReleaseHeldResources("job-a"))
    assert await asyncio.wait_for(hold(node, "job-c", GPU=0.5), 5) == ["0"]


async def test_a_waiting_hold_released_or_whose_owner_ends_is_dropped(system, node):
    runner = Fake(system, "runner")
    assert await asyncio.wait_for(hold(node, "job-a", runner, CPU=2), 5) == []
    waiting = hold(node, "job-b", CPU=1)
    node.tell(ReleaseHeldResources("job-b"))  # a PENDING job stopped
    with pytest.raises(RuntimeError, match="released before it was held"):
        await asyncio.wait_for(waiting, 5)
    await runner.stop()  # the runner of job-a ended: what it held comes back
    await node.settle()
    assert await node.available() == {"CPU": 2.0, "GPU": 0.0, "memory": 100.0}


# -- warm workers -----------------------------------------------------------------------------

async def test_the_pool_is_kept_warm_and_a_dead_worker_replaced(node):
    node.tell(attach_pool(node.pool, 2))
    assert await node.pool_asked() == 2
    first, second = node.worker_ready(), node.worker_ready()
    lease = await granted(node.request(CPU=1))
    node.tell(WorkerDied(lease.pid))
    assert await node.pool_asked() == 1  # back to two live workers
    node.tell(ReturnLease(lease.lease_id))
    node.tell(WorkerDied(second if lease.pid == first else first))
    assert await node.pool_asked() == 1


# -- blocked workers lend their CPUs --------------------------------------------------------------

async def test_a_blocked_lease_lends_its_cpus_until_unblocked(node):
    node.worker_ready()
    node.worker_ready()
    parent = await granted(node.request(CPU=2, memory=10))
    child = node.request(CPU=1)
    await assert_waiting(node, child)
    node.tell(LeaseBlocked(parent.lease_id))
    await granted(child)  # the nested task runs on the CPUs the blocked one lent
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0, "memory": 90.0}
    node.tell(LeaseBlocked(parent.lease_id))  # twice changes nothing
    assert (await node.available())["CPU"] == 1.0
    node.tell(LeaseUnblocked(parent.lease_id))
    assert (await node.available())["CPU"] == -1.0  # oversubscribed until the child returns


async def test_returning_a_blocked_lease_does_not_give_its_cpus_back_twice(node):
    node.worker_ready()
    node.worker_ready()
    blocked = await granted(node.request(CPU=1, memory=10))
    await granted(node.request(CPU=1))
    node.tell(LeaseBlocked(blocked.lease_id))
    assert (await node.available())["CPU"] == 1.0
    node.tell(ReturnLease(blocked.lease_id))
    assert await node.available() == {"CPU": 1.0, "GPU": 0.0, "memory": 100.0}


# -- infeasible requests and other nodes ----------------------------------------------------------

def view(*nodes: tuple[str, Fake, dict]) -> ClusterView:
    """A ClusterView of this node and ``nodes`` (id, their scheduler, their resources)."""
    records = {NODE: {"uris": {}, "resources": {"CPU": 2.0, "memory": 100.0}}}
    for node_id, scheduler, resources in nodes:
        records[node_id] = {"uris": {"scheduler": scheduler.ref.to_uri()}, "resources": resources}
    return ClusterView(records)


async def test_an_infeasible_request_waits_without_spilling_on_a_single_node(node):
    node.worker_ready()
    impossible = node.request(GPU=1)
    await assert_waiting(node, impossible)
    assert await node.pool_asked() == 0
    assert (await granted(node.request(CPU=1))).node_id == NODE  # it blocks nobody


async def test_an_infeasible_request_goes_to_a_node_that_can_hold_it(system):
    node = Node(system, {"CPU": 2.0}, cluster=True)
    gpu_node = Fake(system, "gpu-scheduler")
    node.tell(view(("node-gpu", gpu_node, {"CPU": 1.0, "GPU": 1.0})))
    node.tell(NodeLoad("node-gpu", {"CPU": 0.0, "GPU": 0.0}))  # busy now: still the only one able
    answer = await asyncio.wait_for(node.request(GPU=1), 5)
    assert answer == Spillback("node-gpu", gpu_node.ref)


async def test_an_infeasible_request_spills_once_a_node_that_can_hold_it_joins(system):
    node = Node(system, {"CPU": 2.0}, cluster=True)
    impossible = node.request(GPU=1)
    await assert_waiting(node, impossible)
    gpu_node = Fake(system, "gpu-scheduler")
    node.tell(view(("node-gpu", gpu_node, {"GPU": 1.0})))
    assert await asyncio.wait_for(impossible, 5) == Spillback("node-gpu", gpu_node.ref)


async def test_a_full_node_spills_to_the_node_with_the_most_free_cpus(system):
    node = Node(system, {"CPU": 2.0}, cluster=True)
    small, big = Fake(system, "small-scheduler"), Fake(system, "big-scheduler")
    node.tell(view(("node-small", small, {"CPU": 2.0}), ("node-big", big, {"CPU": 8.0})))
    node.worker_ready()
    assert (await granted(node.request(CPU=2))).node_id == NODE  # room here: kept here
    answers = [await asyncio.wait_for(node.request(CPU=2), 5) for _ in range(5)]
    # Each spill counts as taken there until that node publishes its load: 8 -> 6 -> 4 -> 2,
    # then small (2) and big (2) tie and the first seen wins, then big again.
    assert [a.node_id for a in answers] == ["node-big", "node-big", "node-big", "node-small", "node-big"]
    assert all(isinstance(a, Spillback) for a in answers)
    assert answers[0].scheduler == big.ref
    nowhere = node.request(CPU=2)  # nobody has room now: it waits here
    await assert_waiting(node, nowhere)
    node.tell(NodeLoad("node-small", {"CPU": 2.0}))  # small published that it is free again
    assert await asyncio.wait_for(nowhere, 5) == Spillback("node-small", small.ref)


async def test_an_unspillable_request_waits_here_even_if_another_node_has_room(system):
    node = Node(system, {"CPU": 1.0}, cluster=True)
    other = Fake(system, "other-scheduler")
    node.tell(view(("node-b", other, {"CPU": 4.0})))
    node.worker_ready()
    held = await granted(node.request(CPU=1))
    pinned = node.request(CPU=1, spillable=False)
    await assert_waiting(node, pinned)
    node.tell(ReturnLease(held.lease_id))
    assert (await granted(pinned)).node_id == NODE


async def test_a_node_that_leaves_the_view_gets_no_more_requests(system):
    node = Node(system, {"CPU": 1.0}, cluster=True)
    other = Fake(system, "other-scheduler")
    node.tell(view(("node-b", other, {"CPU": 4.0})))
    node.tell(view())
    impossible = node.request(CPU=4)
    await assert_waiting(node, impossible)


async def test_the_node_publishes_its_free_resources_when_they_change(system):
    node = Node(system, {"CPU": 2.0}, cluster=True)
    node.worker_ready()
    node.worker_ready()
    first = await granted(node.request(CPU=1))
    await granted(node.request(CPU=1))
    await node.settle()
    loads = node.gcs.take()
    assert loads and all(isinstance(m, NodeLoad) and m.node_id == NODE for m in loads)
    assert loads[-1] == NodeLoad(NODE, {"CPU": 0.0})
    node.tell(ReturnLease(first.lease_id))
    await node.settle()
    assert node.gcs.take() == [NodeLoad(NODE, {"CPU": 1.0})]


async def test_the_ready_workers_are_listed_with_whether_they_are_leased(node):
    leased, idle = node.worker_ready(), node.worker_ready()  # the first ready is leased first
    await granted(node.request(CPU=1.0))
    listed = await node.scheduler.ask(ListWorkerProcesses())
    assert sorted((pid, is_leased, for_actor) for pid, _uri, is_leased, for_actor in listed) == [
        (leased, True, False), (idle, False, False)]
    assert {uri for _pid, uri, _leased, _for_actor in listed} == {node.workers[leased].ref.to_uri(),
                                                                  node.workers[idle].ref.to_uri()}
