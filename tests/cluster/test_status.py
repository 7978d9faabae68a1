"""actorcore status: records written per gcs/schema.py into a real etcd, gathered and shown
(by `actorcore.status` in-process and by the CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from actorcore import cluster_files
from actorcore.gcs import EtcdClient, SealedEtcd, schema
from actorcore.status import format_status, gather_status

from ..gcs.test_etcd_auth import ALICE, _enable_auth

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
TOKEN = "status-test-token"  # the records are sealed with it; the CLI is given it


def _node(node_id: str, head: bool, resources: dict, start_time: float) -> dict:
    return {"node_id": node_id, "address": "127.0.0.1", "head": head, "resources": resources,
            "start_time": start_time, "pid": 1000 + int(start_time), "host_id": "h",
            "kernel": f"127.0.0.1:{7000 + int(start_time)}", "transfer": f"127.0.0.1:{8000 + int(start_time)}",
            "uris": {}}


async def _write_cluster(raw: EtcdClient, cluster: str = "default") -> None:
    client = SealedEtcd(raw, TOKEN)

    def put(*parts, value):
        return client.put(schema.key(cluster, *parts), json.dumps(value).encode())

    await client.put(schema.key(cluster, "config"), schema.ClusterConfig(object_replicas=2, lease_ttl=5).to_json())
    await put("nodes", "head0000", value=_node("head0000", True, {"CPU": 2.0, "GPU": 1.0}, 1))
    await put("nodes", "work1111", value=_node("work1111", False, {"CPU": 4.0, "disk": 2.0}, 2))
    await put("dead", "gone2222", value={**_node("gone2222", False, {"CPU": 8.0}, 0), "died": 3.0})
    await put("resources", "head0000", value={"available": {"CPU": 1.0, "GPU": 1.0}, "objects": 3,
                                               "object_bytes": 3 * MiB, "object_store_capacity": 64 * MiB,
                                               "spilled_objects": 2, "spilled_bytes": 5 * MiB, "time": 4.0})
    # work1111 has not published its load yet: it counts as idle.
    for i, state in enumerate(["ALIVE", "ALIVE", "PENDING", "DEAD", "RESTARTING", "ALIVE"]):
        await put("actors", f"actor{i}", value={"actor_id": f"actor{i}", "class_name": "C", "state": state})
    await client.put(schema.key(cluster, "actors", "broken"), b"not json")
    await client.put(schema.key(cluster, "named", "ns", "x"), b"actor0")
    await client.put(schema.key("other", "nodes", "elsewhere"), json.dumps(_node("elsewhere", True, {}, 9)).encode())


async def test_gather_status(etcd_server):
    async with await EtcdClient.connect(etcd_server.endpoint) as client:
        await _write_cluster(client)
        status = await gather_status(SealedEtcd(client, TOKEN), "default")
    assert status["cluster"] == "default" and status["etcd"] == etcd_server.endpoint
    assert status["config"] == {"object_replicas": 2, "lease_ttl": 5.0}
    nodes = {n["node_id"]: n for n in status["nodes"]}
    assert [n["node_id"] for n in status["nodes"]] == ["head0000", "work1111", "gone2222"]  # alive, head first
    assert nodes["head0000"]["state"] == "ALIVE" and nodes["head0000"]["head"] is True
    assert nodes["head0000"]["resources"] == {"total": {"CPU": 2.0, "GPU": 1.0}, "available": {"CPU": 1.0, "GPU": 1.0}}
    assert (nodes["head0000"]["objects"], nodes["head0000"]["object_bytes"]) == (3, 3 * MiB)
    assert nodes["work1111"]["resources"]["available"] == {"CPU": 4.0, "disk": 2.0}
    assert nodes["gone2222"]["state"] == "DEAD" and nodes["gone2222"]["died"] == 3.0
    assert status["actors"] == {"PENDING": 1, "ALIVE": 3, "RESTARTING": 1, "DEAD": 1, "UNKNOWN": 1}
    assert status["resources"] == {"total": {"CPU": 6.0, "GPU": 1.0, "disk": 2.0},
                                   "available": {"CPU": 5.0, "GPU": 1.0, "disk": 2.0}}
    assert status["objects"] == {"count": 3, "bytes": 3 * MiB, "capacity": 64 * MiB, "spilled_count": 2,
                                 "spilled_bytes": 5 * MiB}
    json.dumps(status)  # all of it is JSON


async def test_format_status(etcd_server):
    async with await EtcdClient.connect(etcd_server.endpoint) as client:
        await _write_cluster(client)
        text = format_status(await gather_status(SealedEtcd(client, TOKEN), "default"))
    lines = text.splitlines()
    assert f"etcd {etcd_server.endpoint}" in lines[0]
    assert "Nodes: 2 alive, 1 dead" in lines
    head = next(line for line in lines if "head0000" in line)
    assert "yes" in head and "alive" in head and "CPU 1.0/2.0, GPU 0.0/1.0" in head
    assert "3 (3.0/64 MiB), 2 spilled (5.0 MiB)" in head
    worker = next(line for line in lines if "work1111" in line)
    assert "CPU 0.0/4.0, disk 0.0/2.0" in worker and "0 (0.0/0 MiB)" in worker and "spilled" not in worker
    dead = next(line for line in lines if "gone2222" in line)
    assert "dead" in dead and "CPU 8.0" in dead and "/" not in dead
    assert "Actors: 7 (1 PENDING, 3 ALIVE, 1 RESTARTING, 1 DEAD, 1 UNKNOWN)" in lines
    assert "  resources (used/total): CPU 1.0/6.0, GPU 0.0/1.0, disk 0.0/2.0" in lines
    assert "  object store: 3 objects, 3.0 MiB of 64 MiB in memory; 2 spilled to disk (5.0 MiB)" in lines


async def test_an_empty_cluster(etcd_server):
    async with await EtcdClient.connect(etcd_server.endpoint) as client:
        status = await gather_status(SealedEtcd(client, TOKEN))
    assert status["nodes"] == [] and sum(status["actors"].values()) == 0
    text = format_status(status)
    assert "Nodes: 0 alive, 0 dead" in text and "Actors: 0" in text


def _cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actorcore", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, cluster_files.TOKEN_ENV: TOKEN, **(env or {})},
                          check=False)


async def test_cli_status_json_and_table(etcd_server):
    async with await EtcdClient.connect(etcd_server.endpoint) as client:
        await _write_cluster(client)
    result = _cli("status", "--address", etcd_server.endpoint, "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert [n["node_id"] for n in status["nodes"]] == ["head0000", "work1111", "gone2222"]
    assert status["actors"]["ALIVE"] == 3
    assert status["resources"]["total"]["CPU"] == 6.0
    # Without --address it asks the cluster named in cluster.json.
    cluster_files.write_cluster_info({"address": etcd_server.endpoint, "cluster": "default",
                                      "head_node_id": "head0000", "etcd_auth": None})
    result = _cli("status")
    assert result.returncode == 0, result.stderr
    assert "Nodes: 2 alive, 1 dead" in result.stdout and "head0000" in result.stdout


async def test_cli_status_uses_the_etcd_credentials_of_cluster_json(etcd_server):
    await _enable_auth(etcd_server.endpoint)
    result = _cli("status", "--address", etcd_server.endpoint)
    assert result.returncode == 1 and "requires authentication" in result.stderr
    result = _cli("status", "--address", etcd_server.endpoint, "--etcd-user", "alice",
                  env={"ACTORCORE_ETCD_PASSWORD": ALICE["password"]})
    assert result.returncode == 0, result.stderr
    password_file = cluster_files.home() / "etcd-password"
    password_file.write_text("")
    result = _cli("status", "--address", etcd_server.endpoint, "--etcd-user", "alice",
                  "--etcd-password-file", str(password_file))
    assert result.returncode == 2 and f"{password_file} is empty" in result.stderr
    password_file.write_text(ALICE["password"] + "\n")
    result = _cli("status", "--address", etcd_server.endpoint, "--etcd-user", "alice",
                  "--etcd-password-file", str(password_file))
    assert result.returncode == 0, result.stderr
    cluster_files.write_cluster_info({"address": etcd_server.endpoint, "cluster": "default",
                                      "head_node_id": None, "etcd_auth": ALICE})
    result = _cli("status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["nodes"] == []


async def test_cli_status_refuses_records_sealed_with_another_token(etcd_server):
    async with await EtcdClient.connect(etcd_server.endpoint) as client:
        await _write_cluster(client)
    result = _cli("status", "--address", etcd_server.endpoint, "--json", env={cluster_files.TOKEN_ENV: "not-it"})
    assert result.returncode == 1, result.stdout
    assert "etcd record '/actorcore/default/config' refused" in result.stderr
    assert "not written by this cluster" in result.stderr


async def test_cli_status_without_the_token_says_where_it_looked(etcd_server):
    result = _cli("status", "--address", etcd_server.endpoint, env={cluster_files.TOKEN_ENV: ""})
    assert result.returncode == 1 and result.stdout == ""
    assert "no cluster token found" in result.stderr and cluster_files.TOKEN_ENV in result.stderr


def test_cli_status_with_etcd_unreachable_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    result = _cli("status", "--address", address)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"actorcore status: cannot reach etcd at {address}")


def test_cli_status_without_any_cluster():
    result = _cli("status")
    assert result.returncode == 1
    assert "--address" in result.stderr and "actorcore start --head" in result.stderr


def test_the_memory_resource_is_shown_in_gib():
    gib = 1024 * MiB
    alive = {"node_id": "n1", "address": "127.0.0.1", "head": True, "state": "ALIVE", "objects": 0, "object_bytes": 0,
             "resources": {"total": {"CPU": 2.0, "memory": 4 * gib, "object_store_memory": gib},
                           "available": {"CPU": 2.0, "memory": 2.5 * gib, "object_store_memory": gib}}}
    dead = {"node_id": "n2", "address": "127.0.0.1", "head": False, "state": "DEAD",
            "resources": {"total": {"CPU": 1.0, "memory": 8 * gib}}}
    text = format_status({"cluster": "default", "etcd": "127.0.0.1:2379", "nodes": [alive, dead], "actors": {},
                          "resources": alive["resources"], "objects": {"count": 0, "bytes": 0}})
    assert "CPU 0.0/2.0, memory 1.5/4.0 GiB" in next(line for line in text.splitlines() if "n1" in line)
    assert "CPU 1.0, memory 8.0 GiB" in next(line for line in text.splitlines() if "n2" in line)
    assert "  resources (used/total): CPU 0.0/2.0, memory 1.5/4.0 GiB" in text.splitlines()
