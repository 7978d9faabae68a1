"""The actor submitter in process: creation, calls in order, restarts, death, borrowed handles and
kill; fake Schedulers, workers, owners and GCS answer its requests."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from actorcore import exceptions as exc
from actorcore.actor import ActorHandle
from actorcore.core.actor_submitter import ActorSubmitter
from actorcore.core.death_watch import DeathWatch
from actorcore.core.messages import ResolveActor, WatchActor
from actorcore.core.object_table import ObjectTable
from actorcore.core.payloads import from_payload
from actorcore.core.task_manager import TaskManager
from actorcore.core.task_submitter import TaskSubmitter
from actorcore.kernel import PEER_LOST, PeerLostError, Terminated
from actorcore.objects import serialize
from actorcore.protocol import (
    ActorStateChanged,
    ActorWorkerExited,
    BecomeActor,
    ExecuteTask,
    ExitWorker,
    ForgetActor,
    Inline,
    KillWorker,
    LeaseGranted,
    RequestLease,
    TaskResult,
)

from .fakes import FakeSystem, cluster_of, settle

pytestmark = pytest.mark.usefixtures("no_dangling_tasks")


def inline(value) -> Inline:
    return Inline(serialize(value).to_bytes())


class Owner:
    """An ActorSubmitter with its real collaborators, on fake remote actors."""

    def __init__(self, system: FakeSystem) -> None:
        self.system = system
        ids = itertools.count(1)

        def new_id(kind: str) -> str:
            return f"o{kind}{next(ids)}"

        self.core = system.ref("core")
        self.scheduler, self.gcs, self.pool = system.ref("scheduler"), system.ref("gcs"), system.ref("pool")
        cluster = cluster_of(system, {"CPU": 2})
        self.objects = ObjectTable(system, self.core, "n1", system.ref("store"), self.scheduler, cluster, new_id)
        manager = TaskManager(self.objects, False)
        tasks = TaskSubmitter(system, self.core, self.scheduler, self.objects, manager, cluster, is_driver=True,
                              new_id=new_id)
        self.deaths = DeathWatch(system, self.core)
        self.actors = ActorSubmitter(system, self.core, self.gcs, self.pool, self.objects, manager, tasks, cluster,
                                     self.deaths, new_id=new_id)
        self.pids = itertools.count(100)

    def create(self, actor_id: str = "a1", **options) -> ActorHandle:
        self.actors.create(actor_id, "Cls", "Counter", [], {}, options, False, "ns")
        return ActorHandle(actor_id, "Cls", "Counter", {"incr": 1}, self.core, "ns", None)

    async def place(self, worker: str) -> int:
        """Grant the open actor lease with `worker`, which runs the constructor; its pid."""
        pid = next(self.pids)
        await settle()
        self.scheduler.asked(RequestLease)[0][1].set_result(LeaseGranted(pid, self.system.ref(worker), pid, "n1"))
        await settle()
        self.system.ref(worker).asked(BecomeActor)[0][1].set_result(None)
        await settle()
        return pid

    async def call(self, handle: ActorHandle, count: int = 1) -> list:
        refs = [self.actors.submit(handle, "incr", [], {}, 1)[0] for _ in range(count)]
        await settle()
        return refs

    def calls_on(self, worker: str) -> list:
        return self.system.ref(worker).asked(ExecuteTask)

    async def answer_calls(self, worker: str) -> None:
        for message, reply in self.calls_on(worker):
            reply.set_result(TaskResult([inline(message.spec.task_id)], 1))
        await settle()

    async def worker_dies(self, worker: str, pid: int, how: str = "killed by signal 9") -> None:
        self.deaths.on_worker_exited(ActorWorkerExited(pid, pid, how))
        for _, reply in self.calls_on(worker):
            reply.set_exception(PeerLostError(f"{worker} died"))
        terminated = Terminated(self.system.ref(worker), PEER_LOST)
        self.deaths.on_terminated(terminated)
        self.actors.on_worker_ended(terminated)
        await settle()

    async def value(self, ref):
        return from_payload(await self.objects.payload_future(ref))

    def states_told(self) -> list[str]:
        return [m.record["state"] for m in self.gcs.told if type(m) is ActorStateChanged]


@pytest.fixture
async def owner():
    return Owner(FakeSystem(asyncio.get_running_loop()))


async def test_calls_made_before_the_actor_is_up_reach_it_in_order(owner):
    handle = owner.create()
    refs = await owner.call(handle, 3)
    [(request, _)] = owner.scheduler.asked(RequestLease)
    assert request.for_actor and request.shape == ()
    await owner.place("w1")
    assert owner.states_told() == ["ALIVE"] and owner.system.ref("w1") in owner.system.watched
    calls = owner.calls_on("w1")
    assert [m.spec.task_id for m, _ in calls] == [ref.id.split(".")[0] for ref in refs]
    assert all(m.spec.method == "incr" and m.lease_id is None for m, _ in calls)
    await owner.answer_calls("w1")
    assert [await owner.value(ref) for ref in refs] == [ref.id.split(".")[0] for ref in refs]


async def test_an_actor_whose_process_died_is_restarted_and_gets_its_call_in_flight_again(owner):
    handle = owner.create(max_restarts=1, max_task_retries=1)
    pid = await owner.place("w1")
    [ref] = await owner.call(handle)
    await owner.worker_dies("w1", pid)
    assert owner.states_told() == ["ALIVE", "RESTARTING"]
    await owner.place("w2")
    [(message, _)] = owner.calls_on("w2")
    assert message.spec.attempt == 1
    await owner.answer_calls("w2")
    assert await owner.value(ref) == ref.id.split(".")[0]


async def test_an_actor_out_of_restarts_is_dead_with_how_its_process_ended(owner):
    handle = owner.create()
    pid = await owner.place("w1")
    [in_flight] = await owner.call(handle)
    death = asyncio.ensure_future(owner.actors.death_of(handle))
    await owner.worker_dies("w1", pid, how="killed by signal 9")
    cause = f"its worker process (pid {pid}) died: killed by signal 9"
    assert await death == cause
    with pytest.raises(exc.ActorDiedError, match="killed by signal 9"):
        await owner.value(in_flight)
    [later] = await owner.call(handle)
    with pytest.raises(exc.ActorDiedError, match="killed by signal 9"):
        await owner.value(later)
    assert owner.states_told() == ["ALIVE", "DEAD"]


async def test_a_borrowed_handle_asks_the_owner_where_its_actor_lives(owner):
    other = owner.system.ref("other-core")
    handle = ActorHandle("b1", "Cls", "Counter", {"incr": 1}, other, "ns", None)
    [ref] = await owner.call(handle)
    [(message, reply)] = other.asked(ResolveActor)
    assert message == ResolveActor("b1")
    reply.set_result((owner.system.ref("w9"), 99, None))
    await settle()
    await owner.answer_calls("w9")
    assert await owner.value(ref) == ref.id.split(".")[0]
    assert owner.actors.worker_hint("b1") == (owner.system.ref("w9"), 99)


async def test_a_borrowers_watch_is_answered_by_the_owner_once_the_actor_is_dead(owner):
    other = owner.system.ref("other-core")
    handle = ActorHandle("b2", "Cls", "Counter", {"incr": 1}, other, "ns", None)
    death = asyncio.ensure_future(owner.actors.death_of(handle))
    await settle()
    [(message, reply)] = other.asked(WatchActor)
    assert message == WatchActor("b2")
    reply.set_result("killed")
    assert await death == "killed"


async def test_kill_ends_the_process_and_the_actor_is_dead_for_good(owner):
    handle = owner.create(max_restarts=3)
    pid = await owner.place("w1")
    killing = asyncio.ensure_future(owner.actors.kill_owned("a1", no_restart=True))
    await settle()
    [(message, reply)] = owner.system.ref("w1").asked(ExitWorker)  # asked: a driver exiting next loses no tell
    reply.set_exception(PeerLostError("the worker exited before it answered"))  # as it does
    await settle()
    assert KillWorker(pid) in owner.pool.told
    [(message, reply)] = owner.gcs.asked(ForgetActor)
    assert message.actor_id == "a1"
    reply.set_result(True)
    await killing
    [ref] = await owner.call(handle)
    with pytest.raises(exc.ActorDiedError, match="kill"):
        await owner.value(ref)
