"""The records on a node's boundary (node_config.py) and the node launcher (node_launcher.py):
JSON round trips, what `wait_ready` reports when a node does not start, and a real node
process started by `launch` reporting its endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from actorcore.node_config import EtcdToStart, NodeConfig, NodeEndpoints, WorkerConfig
from actorcore.node_launcher import NodeProcess, NodeStartError, launch
from actorcore.objects import list_segments

pytestmark = pytest.mark.timeout(60)

ENDPOINTS = NodeEndpoints(node_id="n1", node="uri:node", scheduler="uri:scheduler", gcs="uri:gcs",
                          object_store="uri:store", pool="uri:pool", resources={"CPU": 2.0}, pid=42,
                          host_id="machine/n1", cluster_mode=True, kernel="10.0.0.1:5000",
                          transfer="10.0.0.1:5001", etcd="10.0.0.1:6380")


def test_a_node_config_survives_json():
    config = NodeConfig(node_id="n1", etcd="127.0.0.1:6380", num_cpus=2, resources={"disk": 1.0},
                        sys_path=["/src"], cluster_mode=True, head=True,
                        start_etcd=EtcdToStart(6380, "/tmp/etcd", "127.0.0.1"), lease_ttl=5.0, object_replicas=2)
    assert NodeConfig.from_json(config.to_json()) == config
    local = NodeConfig(node_id="n2", etcd="127.0.0.1:1", num_cpus=1, driver="uri:driver")
    assert NodeConfig.from_json(local.to_json()) == local


def test_endpoints_survive_json_and_match_the_nodes_record():
    assert NodeEndpoints.from_json(ENDPOINTS.to_json()) == ENDPOINTS
    record = {"node_id": "n1", "address": "10.0.0.1", "head": True, "resources": {"CPU": 2.0}, "pid": 42,
              "host_id": "machine/n1", "kernel": "10.0.0.1:5000", "transfer": "10.0.0.1:5001",
              "start_time": 1.0, "uris": ENDPOINTS.uris()}
    assert NodeEndpoints.from_record(record, etcd="10.0.0.1:6380") == ENDPOINTS
    worker = WorkerConfig(ENDPOINTS, "10.0.0.1", ["/src"])
    assert WorkerConfig.from_json(worker.to_json()) == worker


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", json.dumps({"node_id": "n1"}),
                                  json.dumps({**json.loads(ENDPOINTS.to_json()), "surprise": 1})])
def test_anything_but_endpoints_is_refused(text):
    with pytest.raises(ValueError, match="not a node's endpoints"):
        NodeEndpoints.from_json(text)


def _stand_in(code: str, line: bytes | None) -> NodeProcess:
    """A NodeProcess around a process that is no node: `line` is what its ready pipe carries
    (None: the pipe stays open and silent)."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", code])
    if line is not None:
        os.write(write_fd, line)
        os.close(write_fd)
    node = NodeProcess(process, NodeConfig(node_id="x", etcd="127.0.0.1:1", num_cpus=1), read_fd)
    node.write_fd = write_fd if line is None else None
    return node


def _reap(node: NodeProcess) -> None:
    if node.process.poll() is None:
        node.process.kill()
    node.process.wait()
    if node.write_fd is not None:
        os.close(node.write_fd)


def test_a_node_that_exits_without_a_ready_line_is_reported_with_its_exit_code():
    node = _stand_in("raise SystemExit(3)", b"")
    try:
        with pytest.raises(NodeStartError, match="without reporting ready; the node process exited with code 3") as e:
            node.wait_ready(timeout=30)
        assert e.value.exit_code == 3
    finally:
        _reap(node)


def test_a_ready_line_that_is_no_endpoints_is_reported():
    node = _stand_in("pass", b"hello\n")
    try:
        with pytest.raises(NodeStartError, match="unexpected ready line 'hello'"):
            node.wait_ready(timeout=30)
    finally:
        _reap(node)


def test_a_silent_node_times_out():
    node = _stand_in("import time; time.sleep(60)", None)
    try:
        with pytest.raises(NodeStartError, match=r"did not report ready within 0\.2 s"):
            node.wait_ready(timeout=0.2)
    finally:
        _reap(node)


def test_launch_starts_a_node_that_reports_its_endpoints():
    node_id = uuid.uuid4().hex[:12]
    # A local node reports ready before it reaches etcd: none is needed to see its endpoints.
    config = NodeConfig(node_id=node_id, etcd="127.0.0.1:1", num_cpus=0, cwd=os.getcwd(),
                        sys_path=[p or os.getcwd() for p in sys.path], memory=5e8,
                        object_store_memory=1 << 20)
    node = launch(config, token=uuid.uuid4().hex)
    try:
        endpoints = node.wait_ready(timeout=30)
        assert endpoints.node_id == node_id and endpoints.pid == node.pid
        assert endpoints.resources == {"CPU": 0.0, "memory": 5e8,
                                       "object_store_memory": 1 << 20} and not endpoints.cluster_mode
        assert set(endpoints.uris()) == {"node", "scheduler", "gcs", "object_store", "pool", "task_history", "logs"}
        assert all(uri for uri in endpoints.uris().values())
        with open(f"/proc/{node.pid}/cmdline") as cmdline:
            assert node_id in cmdline.read()
    finally:
        node.process.terminate()
        assert node.process.wait(30) == 0
    assert not [s for s in list_segments() if node_id in s]
