"""`actorcore.timeline()` on a real two-node cluster: one complete event per task attempt on
its node's and worker's rows, in start order, lasting at least the task's sleep, a failed task's
error in its args; the file written is a JSON trace Perfetto opens. Then `chrome_trace` alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import actorcore as ray
from actorcore.task_timeline import chrome_trace
from actorcore.testing import wait_until

pytestmark = pytest.mark.timeout(240)

SLEEP = 0.3


@ray.remote
def nap(seconds):
    time.sleep(seconds)
    return os.getpid()


@ray.remote
def broken():
    raise ValueError("the timeline shows this")


def _runs(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["ph"] == "X" and e["name"] == name]


def test_tasks_on_two_nodes_are_events_per_worker(two_nodes, tmp_path):
    node_of = {("head" if "head" in n["Resources"] else "other"): n["NodeID"] for n in ray.nodes() if n["Alive"]}
    refs = [nap.options(resources={where: 1}).remote(SLEEP) for where in ("head", "other") for _ in range(2)]
    pids = ray.get(refs)
    with pytest.raises(ValueError, match="the timeline shows this"):
        ray.get(broken.options(resources={"other": 1}).remote())

    def complete():
        events = ray.timeline()
        naps = [e for e in _runs(events, "nap") if e["args"]["state"] == "FINISHED"]
        failed = [e for e in _runs(events, "broken") if e["args"]["state"] == "FAILED"]
        return events if len(naps) == 4 and len(failed) == 1 else None

    events = wait_until(complete, 60, "the 4 naps and the failed task in the timeline", details=ray.timeline)
    runs = [e for e in events if e["ph"] == "X"]
    assert [e["ts"] for e in runs] == sorted(e["ts"] for e in runs)
    naps = _runs(events, "nap")
    for event in naps:
        assert event["dur"] >= SLEEP * 1e6, event
        assert event["args"]["worker_pid"] in pids
        assert event["args"]["func_or_class_name"] == "nap"
    assert {e["args"]["node_id"] for e in naps} == set(node_of.values())
    # one row group per node, one row per worker: pid follows the node, tid the worker process
    pid_of_node = {e["args"]["node_id"]: e["pid"] for e in runs}
    assert len(set(pid_of_node.values())) == len(pid_of_node)
    tid_of_worker = {(e["pid"], e["args"]["worker_pid"]): e["tid"] for e in runs}
    assert len(set(tid_of_worker.values())) == len(tid_of_worker)
    for event in runs:
        assert pid_of_node[event["args"]["node_id"]] == event["pid"]
    names = {(e["name"], e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    for node_id, pid in pid_of_node.items():
        assert names[("process_name", pid, 0)] == f"Node {node_id}"
    for (pid, worker_pid), tid in tid_of_worker.items():
        assert names[("thread_name", pid, tid)].endswith(f"(pid {worker_pid})")
    failed = _runs(events, "broken")[0]
    assert failed["args"]["node_id"] == node_of["other"]
    assert failed["args"]["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert "the timeline shows this" in failed["args"]["error_message"]

    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    written = json.loads(path.read_text())
    assert isinstance(written, list) and len(written) >= len(events)
    for event in written:  # what Perfetto's JSON importer needs of each event
        assert isinstance(event, dict) and event["ph"] in ("X", "M")
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        if event["ph"] == "X":
            assert isinstance(event["ts"], int) and isinstance(event["dur"], int) and event["name"]


def test_the_cli_writes_the_trace(two_nodes, tmp_path):
    ray.get(nap.remote(0))
    path = tmp_path / "cli-trace.json"
    env = {**os.environ}
    env.pop("ACTORCORE_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "actorcore", "timeline", "--address", two_nodes,
                             "--output", str(path)], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    events = json.loads(path.read_text())
    assert _runs(events, "nap")
    assert str(path) in result.stdout and "ui.perfetto.dev" in result.stdout


def test_timeline_needs_a_path_and_init(two_nodes):
    with pytest.raises(TypeError, match="give a path"):
        ray.timeline(42)
    code = "import actorcore\ntry:\n    actorcore.timeline()\nexcept RuntimeError as e:\n    print(e)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "call actorcore.init() first" in result.stdout


def test_chrome_trace_of_records():
    records = [
        {"task_id": "t1", "attempt_number": 0, "name": "a", "state": "FINISHED", "node_id": "n1",
         "worker_id": "w1", "worker_pid": 11, "start_time_ms": 1000, "end_time_ms": 1500},
        {"task_id": "t2", "attempt_number": 1, "name": "b", "state": "RUNNING", "node_id": "n1",
         "worker_id": "w2", "worker_pid": 12, "start_time_ms": 900, "end_time_ms": None},
        {"task_id": "t3", "attempt_number": 0, "name": "c", "state": "PENDING_NODE_ASSIGNMENT",
         "start_time_ms": None},
    ]
    events = chrome_trace(records, now_ms=2000)
    runs = [e for e in events if e["ph"] == "X"]
    assert [(e["name"], e["ts"], e["dur"], e["pid"], e["tid"]) for e in runs] == [
        ("b", 900_000, 1_100_000, 0, 1), ("a", 1_000_000, 500_000, 0, 0)]
    assert runs[0]["args"] == {"task_id": "t2", "attempt_number": 1, "state": "RUNNING", "node_id": "n1",
                               "worker_id": "w2", "worker_pid": 12}
    assert [(e["name"], e["args"]["name"]) for e in events if e["ph"] == "M"] == [
        ("process_name", "Node n1"), ("thread_name", "worker:w1 (pid 11)"), ("thread_name", "worker:w2 (pid 12)")]
