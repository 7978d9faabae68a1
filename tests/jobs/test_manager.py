"""The `JobManager` in this process, over a real etcd: the jobs a killed head left unfinished
are marked FAILED and their processes killed, and the jobs of a manager that stops are
STOPPED with no process left."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from actorcore.gcs import schema
from actorcore.gcs.sealed import SealedEtcd
from actorcore.jobs.manager import JOB_ID_ENV, JobManager, SubmitJob
from actorcore.jobs.records import SubmitRequest
from actorcore.kernel import ActorSystem
from actorcore.testing import async_wait_until, is_alive

pytestmark = pytest.mark.timeout(60)

TOKEN = "manager-test-token"


@pytest.fixture
async def etcd(etcd_server):
    client = await SealedEtcd.connect([etcd_server.endpoint], secret=TOKEN, timeout=5)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def system():
    system = await ActorSystem.start(name="jobs-test", uds=False)
    yield system
    await system.shutdown(timeout=10.0)


async def record_of(etcd, submission_id: str) -> dict:
    return json.loads(await etcd.get(schema.key("default", "jobs", submission_id)))


def manager(system, etcd_server, tmp_path):
    return system.spawn(JobManager, etcd_server.endpoint, TOKEN, cluster="default", address=etcd_server.endpoint,
                        log_folder=str(tmp_path / "logs"), cwd=str(tmp_path), stop_grace=0.5, name="jobs")


@pytest.fixture
def sleepers():
    """A leftover job's process (its environment names job "left") and a stranger's."""
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True, env={**os.environ, JOB_ID_ENV: "left"})
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)  # one that reused a recorded pid, say
    try:
        yield leftover, stranger
    finally:
        for process in (leftover, stranger):
            process.kill()
            process.wait()


async def test_jobs_a_killed_head_left_running_are_failed_and_killed(etcd_server, etcd, system, tmp_path, sleepers):
    leftover, stranger = sleepers
    records = {"left": {"status": "RUNNING", "pid": leftover.pid}, "done": {"status": "SUCCEEDED"},
               "stranger": {"status": "RUNNING", "pid": stranger.pid}}
    for submission_id, fields in records.items():
        record = {"submission_id": submission_id, "entrypoint": "sleep 600", "start_time": 1, **fields}
        await etcd.put(schema.key("default", "jobs", submission_id), json.dumps(record).encode())
    manager(system, etcd_server, tmp_path)
    await async_wait_until(lambda: _status(etcd, "left", "FAILED"), 20, "the leftover job marked failed")
    left = await record_of(etcd, "left")
    assert left["error_type"] == "head_stopped" and "head node" in left["message"]
    assert leftover.wait(10) == -9
    assert (await record_of(etcd, "stranger"))["status"] == "FAILED"
    assert stranger.poll() is None  # not that job's process: left alone
    assert (await record_of(etcd, "done"))["status"] == "SUCCEEDED"


async def _status(etcd, submission_id: str, status: str) -> bool:
    return (await record_of(etcd, submission_id))["status"] == status


async def test_the_jobs_of_a_stopping_manager_are_stopped(etcd_server, etcd, system, tmp_path):
    ref = manager(system, etcd_server, tmp_path)
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    submission_id = await ref.ask(SubmitJob(SubmitRequest(entrypoint=f"exec {sys.executable} -c '{code}'")), timeout=10)
    await async_wait_until(lambda: _status(etcd, submission_id, "RUNNING"), 20, "the job running")
    pid = (await record_of(etcd, submission_id))["pid"]
    assert is_alive(pid)
    cell = system.cell(ref)
    await cell.request_stop()
    record = await record_of(etcd, submission_id)
    assert record["status"] == "STOPPED" and record["end_time"] >= record["start_time"]
    assert not is_alive(pid)
