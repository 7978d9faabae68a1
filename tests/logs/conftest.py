"""The log tests' cluster: a head serving the dashboard and a joined node whose worker log files
rotate at a few KiB (``ACTORCORE_ROTATION_MAX_BYTES``) and which keeps the files of its two
newest ended workers, both started with `actorcore start` in a private ACTORCORE_HOME; the test
process is its driver. `actorcore stop` and removing the home leave nothing behind."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port
from tests.multinode.conftest import Cluster, _session, unstarted_cluster

ROTATION_BYTES = 4000
BACKUPS = 2
DEAD_WORKERS_KEPT = 2


@dataclass
class LogCluster:
    cluster: Cluster
    head: str  # node ids
    other: str
    dashboard_port: int
    token: str

    def logs(self, *args: str, check: bool = True):
        """Run ``actorcore logs ARGS``."""
        return self.cluster.cli("logs", *args, check=check, timeout=120)

    def folder(self, node_id: str) -> Path:
        return self.cluster.home / "logs" / node_id

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.dashboard_port, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def log_cluster():
    import actorcore

    cluster = unstarted_cluster("actorcore-logs-")
    home, env = cluster.home, cluster.env
    port = _free_port()
    with _session(cluster):
        common = ["--num-cpus", "2", "--memory", str(10**9), "--object-store-memory", str(1 << 28)]
        cluster.cli("start", "--head", "--port", cluster.address.rsplit(":", 1)[1], *common,
                    "--resources", '{"head": 1}', "--dashboard-port", str(port))
        (head,) = cluster.node_records()
        cluster.env = {**env, "ACTORCORE_ROTATION_MAX_BYTES": str(ROTATION_BYTES),
                       "ACTORCORE_ROTATION_BACKUP_COUNT": str(BACKUPS),
                       "ACTORCORE_MAX_DEAD_WORKER_LOGS": str(DEAD_WORKERS_KEPT)}
        try:
            cluster.cli("start", "--address", cluster.address, *common, "--resources", '{"other": 1}')
        finally:
            cluster.env = env
        (other,) = [r for r in cluster.node_records() if r["node_id"] != head["node_id"]]
        actorcore.init(address=cluster.address)
        yield LogCluster(cluster, head["node_id"], other["node_id"], port, (home / "token").read_text().strip())


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def as_json(body: bytes):
    return json.loads(body)
