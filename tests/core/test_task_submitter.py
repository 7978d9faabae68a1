"""The task submitter in process: leases, pipelining, retries, cancel, spillback; fake Schedulers
and workers answer its requests."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from actorcore import exceptions as exc
from actorcore.core import task_submitter
from actorcore.core.object_table import ObjectTable
from actorcore.core.payloads import from_payload
from actorcore.core.task_manager import TaskManager
from actorcore.core.task_submitter import TaskSubmitter
from actorcore.kernel import PeerLostError
from actorcore.object_ref import ObjectRef
from actorcore.objects import serialize
from actorcore.protocol import (
    ExecuteTask,
    Failed,
    GiveBackTasks,
    Inline,
    LeaseGranted,
    NotStarted,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskResult,
)

from .fakes import FakeSystem, cluster_of, settle

OPTIONS = {"num_returns": 1, "max_retries": 0, "retry_exceptions": False}

pytestmark = pytest.mark.usefixtures("no_dangling_tasks")


def inline(value) -> Inline:
    return Inline(serialize(value).to_bytes())


class Submitter:
    """A TaskSubmitter with its real object table and task manager, on fake remote actors."""

    def __init__(self, system: FakeSystem, cpus: float, is_driver: bool) -> None:
        self.system = system
        ids = itertools.count(1)

        def new_id(kind: str) -> str:
            return f"d{kind}{next(ids)}"

        cluster = cluster_of(system, {"CPU": cpus})
        self.scheduler = system.ref("scheduler")
        self.objects = ObjectTable(system, system.ref("core"), "n1", system.ref("store"), self.scheduler, cluster,
                                   new_id)
        self.submitter = TaskSubmitter(system, system.ref("core"), self.scheduler, self.objects,
                                       TaskManager(self.objects, False), cluster, is_driver=is_driver, new_id=new_id)
        self.pids = itertools.count(100)

    async def submit(self, count: int = 1, *args, **options) -> list[ObjectRef]:
        refs = [self.submitter.submit("f", "f", list(args), {}, {**OPTIONS, **options}, "ns")[0]
                for _ in range(count)]
        await settle()
        return refs

    async def grant(self, lease_id: int, worker: str, scheduler=None) -> None:
        """Answer the oldest open lease request to `scheduler` (ours) with worker `worker`."""
        _, reply = (scheduler or self.scheduler).asked(RequestLease)[0]
        reply.set_result(LeaseGranted(lease_id, self.system.ref(worker), next(self.pids), "n1"))
        await settle()

    def running(self, worker: str) -> list:
        return self.system.ref(worker).asked(ExecuteTask)

    async def finish(self, worker: str, returns: list | None = None, error: BaseException | None = None) -> None:
        """Answer the oldest task running on `worker` with `returns` (its number), or `error`."""
        message, reply = self.running(worker)[0]
        if error is not None:
            reply.set_exception(error)
        else:
            reply.set_result(TaskResult(returns or [inline(message.spec.task_id)], 1))
        await settle()

    async def value(self, ref: ObjectRef):
        return from_payload(await self.objects.payload_future(ref))


@pytest.fixture
async def system():
    return FakeSystem(asyncio.get_running_loop())


async def _measured_short(driver: Submitter) -> None:
    """Run `f` as often as it takes to be measured short on workers w1 and w2 (leased here)."""
    await driver.submit(task_submitter.PIPELINE_AFTER_SHORT)
    await driver.grant(1, "w1")
    await driver.grant(2, "w2")
    while driver.running("w1") or driver.running("w2"):
        assert len(driver.running("w1")) <= 1 and len(driver.running("w2")) <= 1  # not measured yet
        await driver.finish("w1" if driver.running("w1") else "w2")


async def test_a_driver_leases_one_worker_per_cpu_then_pipelines_short_tasks_on_them(system, monkeypatch):
    monkeypatch.setattr(task_submitter, "SHORT_TASK_SECONDS", 60.0)  # whatever this machine's pace
    driver = Submitter(system, cpus=2, is_driver=True)
    await _measured_short(driver)
    assert [message.shape for message, _ in driver.scheduler.asks] == [(("CPU", 1.0),)] * 2
    refs = await driver.submit(5)
    assert sorted([len(driver.running("w1")), len(driver.running("w2"))]) == [2, 3]
    while driver.running("w1") or driver.running("w2"):
        await driver.finish("w1" if driver.running("w1") else "w2")
    assert [await driver.value(ref) for ref in refs] == [ref.id.split(".")[0] for ref in refs]


async def test_tasks_queued_on_a_worker_are_taken_back_when_another_is_idle(system, monkeypatch):
    monkeypatch.setattr(task_submitter, "SHORT_TASK_SECONDS", 60.0)
    driver = Submitter(system, cpus=2, is_driver=True)
    await _measured_short(driver)
    refs = await driver.submit(6)  # w1 runs the 1st, 3rd, 5th; w2 the others
    assert [len(driver.running("w1")), len(driver.running("w2"))] == [3, 3]
    for _ in range(3):
        await driver.finish("w2")
    # w2 is idle: w1 is asked for the two it has not started, and gives them back.
    [(give_back, answer)] = driver.system.ref("w1").asked(GiveBackTasks)
    assert give_back.count == 2
    queued = driver.running("w1")[1:]
    for message, reply in queued:
        reply.set_result(NotStarted(message.spec.task_id))
    answer.set_result(2)
    await settle()
    # The oldest goes to the idle worker; none is lost or run twice.
    assert driver.running("w2")[0][0].spec.task_id == queued[0][0].spec.task_id
    assert len(driver.running("w1")) + len(driver.running("w2")) == 3
    while driver.running("w1") or driver.running("w2"):
        await driver.finish("w1" if driver.running("w1") else "w2")
    assert [await driver.value(ref) for ref in refs] == [ref.id.split(".")[0] for ref in refs]


async def test_a_function_that_ran_long_is_not_pipelined(system, monkeypatch):
    monkeypatch.setattr(task_submitter, "SHORT_TASK_SECONDS", 60.0)
    driver = Submitter(system, cpus=2, is_driver=True)
    await _measured_short(driver)
    monkeypatch.setattr(task_submitter, "SHORT_TASK_SECONDS", 0.0)  # every run is long from now on
    await driver.submit(2)
    await driver.finish("w1")
    await driver.finish("w2")
    await driver.submit(4)
    assert [len(driver.running("w1")), len(driver.running("w2"))] == [1, 1]  # the others wait for a free worker
    while driver.running("w1") or driver.running("w2"):
        await driver.finish("w1" if driver.running("w1") else "w2")


async def test_a_worker_does_not_pipeline_its_tasks_children(system):
    worker = Submitter(system, cpus=1, is_driver=False)
    await worker.submit(2)
    await worker.grant(1, "w1")
    assert len(worker.running("w1")) == 1  # the second waits for the first to finish
    await worker.finish("w1")
    assert len(worker.running("w1")) == 1 and len(worker.scheduler.asked(RequestLease)) == 0


async def test_a_task_whose_worker_dies_is_retried_then_fails_with_worker_crashed(system):
    driver = Submitter(system, cpus=1, is_driver=True)
    [ref] = await driver.submit(1, max_retries=1)
    await driver.grant(1, "w1")
    await driver.finish("w1", error=PeerLostError("w1 died"))
    assert driver.scheduler.told == [ReturnLease(1, worker_died=True)]
    await driver.grant(2, "w2")
    [(message, _)] = driver.running("w2")
    assert message.spec.attempt == 1
    await driver.finish("w2", error=PeerLostError("w2 died"))
    with pytest.raises(exc.WorkerCrashedError):
        await driver.value(ref)


async def test_an_exception_named_in_retry_exceptions_runs_the_task_again(system):
    driver = Submitter(system, cpus=1, is_driver=True)
    [ref] = await driver.submit(1, max_retries=2, retry_exceptions=[ValueError])
    await driver.grant(1, "w1")
    await driver.finish("w1", [Failed(exc.TaskError("f", "traceback", ValueError("flaky")))])
    [(message, _)] = driver.running("w1")
    assert message.spec.attempt == 1
    await driver.finish("w1", [inline("ok")])
    assert await driver.value(ref) == "ok"


async def test_a_cancelled_task_that_waits_for_a_worker_never_runs(system):
    worker = Submitter(system, cpus=1, is_driver=False)
    first, second = await worker.submit(2)
    await worker.grant(1, "w1")
    worker.submitter.cancel(second, force=False)
    await settle()
    with pytest.raises(exc.TaskCancelledError):
        await worker.value(second)
    await worker.finish("w1")
    assert worker.running("w1") == []
    assert await worker.value(first) == first.id.split(".")[0]


async def test_a_spilled_back_request_is_leased_from_the_other_node_and_returned_there_when_idle(
        system, monkeypatch):
    monkeypatch.setattr(task_submitter, "LEASE_IDLE_SECONDS", 0.0)
    driver = Submitter(system, cpus=1, is_driver=True)
    await driver.submit(1)
    other = system.ref("scheduler-n2")
    driver.scheduler.asked(RequestLease)[0][1].set_result(Spillback("n2", other))
    await settle()
    [(request, _)] = other.asked(RequestLease)
    assert request.spillable is False
    await driver.grant(7, "w7", scheduler=other)
    await driver.finish("w7")
    await settle()
    assert other.told == [ReturnLease(7)] and driver.scheduler.told == []


async def test_a_task_waits_for_its_argument_to_be_made_and_receives_its_payload(system):
    driver = Submitter(system, cpus=1, is_driver=True)
    driver.objects.expect(["a1.0"])
    argument = ObjectRef("a1.0", system.ref("core"), driver.objects)
    await driver.submit(1, argument)
    assert driver.scheduler.asked(RequestLease) == []
    driver.objects.resolve("a1.0", inline("made"))
    await settle()
    await driver.grant(1, "w1")
    [(message, _)] = driver.running("w1")
    assert [from_payload(a) for a in message.spec.args] == ["made"]
