"""The job tests' cluster: a real head started with `actorcore start --head --dashboard-port P`
in a private ACTORCORE_HOME, shared by a module's tests; `Head.client` talks to its Jobs API."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from actorcore.gcs.etcd_server import _free_port
from tests.multinode.conftest import Cluster, _session, unstarted_cluster


@dataclass
class Head:
    cluster: Cluster
    url: str
    port: int
    token: str

    def client(self):
        from actorcore.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.url, token=self.token)


@pytest.fixture(scope="module")
def head():
    cluster = unstarted_cluster("actorcore-jobs-")
    port = _free_port()
    with _session(cluster):
        cluster.cli("start", "--head", "--port", cluster.address.rsplit(":", 1)[1], "--num-cpus", "2",
                    "--memory", str(10**9), "--object-store-memory", str(1 << 28), "--dashboard-port", str(port))
        yield Head(cluster, f"http://127.0.0.1:{port}", port, (cluster.home / "token").read_text().strip())
    assert not os.path.exists(cluster.home)
