"""`make_app` alone, served by aiohttp's test server: an etcd that does not answer gives 503
with a JSON error (not a hang, not a 500), and a plugged-in `StateSource` feeds the task and
object listings, cut to ``limit``."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from actorcore.dashboard.app import make_app
from actorcore.dashboard.sources import StateSource
from actorcore.gcs.etcd_errors import EtcdUnavailableError

pytestmark = pytest.mark.timeout(30)

TOKEN = "app-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class UnreachableEtcd:
    def __init__(self) -> None:
        self.endpoints = ["127.0.0.1:1"]

    def _unreachable(self) -> EtcdUnavailableError:
        return EtcdUnavailableError(self.endpoints, "get", 5.0, ConnectionRefusedError("refused"))

    async def get(self, key):
        raise self._unreachable()

    async def get_prefix(self, prefix):
        raise self._unreachable()


class Listed:
    async def tasks(self, limit):
        return [{"task_id": f"t{i}", "name": "f", "state": "FINISHED"} for i in range(limit + 5)]

    async def objects(self, limit):
        return [{"object_id": "o1", "object_size": 10, "reference_type": "LOCAL_REFERENCE"}]


async def _client(app) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_an_unreachable_etcd_answers_503_with_the_reason():
    client = await _client(make_app(UnreachableEtcd(), TOKEN))
    try:
        for path in ("/api/cluster", "/api/actors", "/api/supervision"):
            response = await client.get(path, headers=BEARER)
            assert response.status == 503, path
            error = (await response.json())["error"]
            assert "etcd did not answer" in error and "unreachable at 127.0.0.1:1" in error
    finally:
        await client.close()


async def test_a_state_source_feeds_tasks_and_objects():
    assert isinstance(Listed(), StateSource)
    client = await _client(make_app(UnreachableEtcd(), TOKEN, source=Listed()))
    try:
        response = await client.get("/api/tasks?limit=3", headers=BEARER)
        body = await response.json()
        assert [task["task_id"] for task in body["tasks"]] == ["t0", "t1", "t2"]
        assert body["available"] is True and "note" not in body
        body = await (await client.get("/api/objects", headers=BEARER)).json()
        assert body["objects"] == [{"object_id": "o1", "object_size": 10, "reference_type": "LOCAL_REFERENCE"}]
    finally:
        await client.close()
