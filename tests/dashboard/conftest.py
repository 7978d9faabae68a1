"""The dashboard tests' cluster: a head started with `actorcore start --head --dashboard-port P`
in a private ACTORCORE_HOME, shared by a module's tests; the test process is its driver.
`Dashboard.request` makes one HTTP request (redirects are not followed)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from actorcore.gcs.etcd_server import _free_port
from tests.multinode.conftest import Cluster, _session, unstarted_cluster


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Dashboard:
    cluster: Cluster
    url: str
    port: int
    token: str
    head_node_id: str
    init_dashboard_url: str | None  # what init()'s context said

    def request(self, method: str, path: str, *, token: str | None = None, cookie: str | None = None,
                form: dict | None = None) -> Response:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = cookie
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def api(self, path: str):
        """GET /api/<path> with the token; its JSON (fails unless 200)."""
        response = self.request("GET", f"/api/{path}", token=self.token)
        assert response.status == 200, (response.status, response.body)
        return response.json()


@pytest.fixture(scope="module")
def dashboard():
    import actorcore as ray

    cluster = unstarted_cluster("actorcore-dashboard-")
    home = cluster.home
    port = _free_port()
    with _session(cluster):
        cluster.cli("start", "--head", "--port", cluster.address.rsplit(":", 1)[1], "--num-cpus", "2",
                    "--resources", '{"A": 1}', "--memory", str(10**9), "--object-store-memory", str(1 << 30),
                    "--dashboard-port", str(port))
        (record,) = cluster.node_records()
        context = ray.init(address=cluster.address)
        yield Dashboard(cluster, f"http://127.0.0.1:{port}", port, (home / "token").read_text().strip(),
                        record["node_id"], context.dashboard_url)
