"""The CLI with real nodes: `actorcore start --head` and two joined nodes (subprocesses, each
with a custom resource of its own), `status --json`, `stop`; `--block`; a head that fails.

Every process of a cluster inherits ``ACTORCORE_HOME`` (a directory of this test), which is
how the tests find what is left of it in /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from actorcore import cluster_files as files
from actorcore.credentials import TLS_SERVER_NAME
from actorcore.env import ETCD_PASSWORD_ENV
from actorcore.gcs import EtcdClient, EtcdServer
from actorcore.gcs.etcd_client import EtcdUnavailableError
from actorcore.gcs.etcd_server import _free_port
from actorcore.objects import list_segments
from actorcore.testing import is_alive, processes_of, wait_until

from ..gcs.conftest import stop_and_check
from ..gcs.test_etcd_auth import ALICE, _enable_auth

pytestmark = pytest.mark.timeout(180)


def _cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actorcore", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _kill_leftovers(home) -> None:
    for pid in processes_of(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def home(actorcore_home):
    try:
        yield actorcore_home
    finally:
        if files.node_files():
            _cli("stop", "--force")
        _kill_leftovers(actorcore_home)


def _logs() -> str:
    """The tails of the nodes' logs."""
    return "\n".join(f"--- {path.name}:\n{path.read_text(errors='replace')[-3000:]}"
                     for path in sorted(files.logs_dir().iterdir()))


def _alive_nodes(address: str) -> list[dict]:
    result = _cli("status", "--address", address, "--json")
    assert result.returncode == 0, result.stderr
    return [n for n in json.loads(result.stdout)["nodes"] if n["state"] == "ALIVE"]


def test_head_two_joined_nodes_status_and_stop(home):
    port = _free_port()
    result = _cli("start", "--head", "--port", str(port), "--num-cpus", "1", "--resources", '{"A": 1}',
                  "--memory", "1000", "--object-store-memory", "1048576")
    assert result.returncode == 0, result.stdout + result.stderr
    address = f"127.0.0.1:{port}"
    credentials_file = files.credentials_path()
    out = result.stdout
    assert f"actorcore start --address {address} --credentials {credentials_file}" in out
    assert f'actorcore.init(address="{address}")' in out and 'address="auto"' in out
    assert "actorcore stop" in out
    assert oct(credentials_file.stat().st_mode & 0o777) == "0o600"
    info = files.read_cluster_info()
    assert info["address"] == address and info["cluster"] == "default"
    assert info["etcd_auth"] == {**{name: str(files.tls_dir() / f"{name}.pem") for name in ("ca", "cert", "key")},
                                 "server_name": TLS_SERVER_NAME}
    with pytest.raises(EtcdUnavailableError):  # the head's etcd takes no anonymous client
        asyncio.run(EtcdClient.connect(address, timeout=2, retry_deadline=2))
    (head,) = files.node_files()
    assert head["head"] is True and head["node_id"] == info["head_node_id"]
    assert f"head node {head['node_id']} (pid {head['pid']})" in out

    for resource in ("B", "C"):
        result = _cli("start", "--address", address, "--credentials", str(credentials_file), "--num-cpus", "2",
                      "--resources", json.dumps({resource: 2}), "--memory", "1000", "--object-store-memory", "1048576")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"joined to the cluster at {address}" in result.stdout
    records = files.node_files()
    assert len(records) == 3, (records, _logs())

    nodes = _alive_nodes(address)  # `start` returns once its node is registered
    assert len(nodes) == 3, (nodes, _logs())
    by_id = {n["node_id"]: n for n in nodes}
    assert set(by_id) == {r["node_id"] for r in records}
    assert by_id[head["node_id"]]["head"] is True
    totals = sorted(tuple(sorted(n["resources"]["total"].items())) for n in nodes)
    assert totals == [(("A", 1.0), ("CPU", 1.0), ("memory", 1000.0), ("object_store_memory", 1048576.0)),
                      (("B", 2.0), ("CPU", 2.0), ("memory", 1000.0), ("object_store_memory", 1048576.0)),
                      (("C", 2.0), ("CPU", 2.0), ("memory", 1000.0), ("object_store_memory", 1048576.0))]
    status = json.loads(_cli("status", "--json").stdout)  # the address from cluster.json
    assert status["resources"]["total"] == {"CPU": 5.0, "A": 1.0, "B": 2.0, "C": 2.0, "memory": 3000.0,
                                                 "object_store_memory": 3 * 1048576.0}
    table = _cli("status").stdout
    assert "Nodes: 3 alive, 0 dead" in table and "CPU 0.0/2.0, B 0.0/2.0" in table

    assert processes_of(home)
    result = _cli("stop")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[-1].startswith(f"head node {head['node_id']}")  # the head last
    assert all(line.endswith(": stopped") for line in lines)
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))
    for record in records:
        assert list_segments(record["node_id"]) == []
    assert files.node_files() == [] and files.read_cluster_info() is None
    assert _cli("stop").stdout.strip() == "no actorcore nodes were running on this machine"


@contextlib.contextmanager
def _blocking_head(num_cpus: int):
    """`start --head --block` in the foreground, run until it says so: the process, its etcd
    port and its output so far. The process is killed on the way out if it still runs."""
    port = _free_port()
    cli = subprocess.Popen([sys.executable, "-m", "actorcore", "start", "--head", "--port", str(port),
                            "--num-cpus", str(num_cpus), "--block"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        for line in cli.stdout:  # bounded by the test's timeout and the CLI's own ready timeout
            lines.append(line)
            if "foreground" in line:
                break
        yield cli, port, lines
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stdout.close()


def test_block_stays_in_the_foreground_until_sigterm(home):
    with _blocking_head(1) as (cli, port, lines):
        assert any("Started the head node" in line for line in lines), "".join(lines)
        (record,) = files.node_files()
        assert len(_alive_nodes(f"127.0.0.1:{port}")) == 1
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(30) == 0
    assert files.node_files() == [] and files.read_cluster_info() is None
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))
    assert list_segments(record["node_id"]) == []


def test_block_exits_cleanly_when_sigterm_comes_after_its_node_was_stopped(home):
    # A pod's end: the preStop hook runs `actorcore stop`, then the kubelet sends SIGTERM to the
    # entry point, which may by then be exiting on its own. Signals sent until it has exited
    # cover every step of that exit: none may turn it into a kill.
    with _blocking_head(1) as (cli, _, _):
        assert _cli("stop").returncode == 0
        deadline = time.monotonic() + 30
        while cli.poll() is None and time.monotonic() < deadline:
            cli.send_signal(signal.SIGTERM)
            time.sleep(0.001)
        assert cli.wait(1) == 0
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))


def test_block_owns_its_node_which_stops_with_its_workers_when_start_is_killed(home):
    with _blocking_head(2) as (cli, _, _):
        (record,) = files.node_files()

        def workers() -> list[int]:
            return [pid for pid in processes_of(home) if b"actorcore.worker" in _cmdline(pid)]

        wait_until(lambda: len(workers()) == 2, 60, "the node's two prestarted workers")
        cli.kill()  # SIGKILL: nothing of `start` runs any more
        cli.wait(10)
        wait_until(lambda: not processes_of(home), 60, "the node, its workers and its etcd to end",
                   details=lambda: [_cmdline(pid) for pid in processes_of(home)])
    assert list_segments(record["node_id"]) == []


def test_without_block_the_node_outlives_start(home):
    port = _free_port()
    result = _cli("start", "--head", "--port", str(port), "--num-cpus", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = files.node_files()
    # `start` has exited: the node runs on and still answers (it registered, and stays ALIVE).
    assert [n["node_id"] for n in _alive_nodes(f"127.0.0.1:{port}")] == [record["node_id"]]
    assert is_alive(record["pid"])
    assert _cli("stop").returncode == 0
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))


def test_a_head_whose_etcd_cannot_start_fails_with_its_log(home, monkeypatch):
    monkeypatch.setenv("ACTORCORE_ETCD_BIN", "/bin/false")
    result = _cli("start", "--head", "--port", str(_free_port()), "--num-cpus", "1")
    assert result.returncode == 1
    assert "its log" in result.stderr and "ends with:" in result.stderr and "/bin/false" in result.stderr
    assert files.node_files() == [] and not files.token_path().exists() and files.read_cluster_info() is None
    assert not files.etcd_data_dir().exists()
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_a_node_starts_stops_it(home, monkeypatch, tmp_path, signum):
    # An "etcd" that never becomes healthy: the node waits for it (10 s), the CLI for the node.
    fake = tmp_path / "etcd"
    fake.write_text('#!/bin/sh\ncase "$1" in --version) echo "etcd Version: 3.6.0"; exit 0;; esac\nexec sleep 120\n')
    fake.chmod(0o755)
    monkeypatch.setenv("ACTORCORE_ETCD_BIN", str(fake))
    cli = subprocess.Popen([sys.executable, "-m", "actorcore", "start", "--head", "--port", str(_free_port()),
                            "--num-cpus", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: any(b"sleep" in _cmdline(pid) for pid in processes_of(home)), 30,
                   "the fake etcd (a sleep) to start")
        cli.send_signal(signum)
        assert cli.wait(30) == 130
        assert "interrupted; the node being started was stopped" in cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stderr.close()
    assert files.node_files() == [] and not files.token_path().exists()
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))


def test_nodes_use_an_existing_etcd_with_authentication(home, monkeypatch):
    server = EtcdServer().start()
    try:
        asyncio.run(_enable_auth(server.endpoint))
        # alice may only use /actorcore/; her password comes from the environment, not argv.
        monkeypatch.setenv(ETCD_PASSWORD_ENV, ALICE["password"])
        result = _cli("start", "--head", "--etcd", server.endpoint, "--etcd-user", "alice", "--num-cpus", "1",
                      "--memory", "1000", "--object-store-memory", "1048576")
        assert result.returncode == 0, result.stdout + result.stderr
        assert files.read_cluster_info()["etcd_auth"] == ALICE
        # A node joined on this machine takes the credentials from cluster.json.
        result = _cli("start", "--address", server.endpoint, "--num-cpus", "1", "--resources", '{"x": 1}',
                      "--memory", "1000", "--object-store-memory", "1048576")
        assert result.returncode == 0, result.stdout + result.stderr
        status = json.loads(_cli("status", "--json").stdout)
        assert [n["state"] for n in status["nodes"]] == ["ALIVE", "ALIVE"]
        assert status["resources"]["total"] == {"CPU": 2.0, "x": 1.0, "memory": 2000.0,
                                                     "object_store_memory": 2 * 1048576.0}
        monkeypatch.setenv(ETCD_PASSWORD_ENV, "wrong")
        result = _cli("start", "--address", server.endpoint, "--etcd-user", "alice")
        assert result.returncode == 1 and "rejected the credentials of user 'alice'" in result.stderr
        assert _cli("stop").returncode == 0
    finally:
        stop_and_check(server)  # its processes inherited ACTORCORE_HOME too
    wait_until(lambda: not processes_of(home), 30, "the cluster's processes to end", details=lambda: processes_of(home))
