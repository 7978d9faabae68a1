"""Leadership's campaign against a real etcd: a daemon told to stop while it campaigns stops
campaigning and never claims the services."""

from __future__ import annotations

import asyncio
import json

import pytest

from actorcore.gcs.etcd_client import EtcdClient
from actorcore.gcs.etcd_server import EtcdServer
from actorcore.services.leadership import Leadership, leader_key, standby_prefix
from actorcore.testing import async_wait_until

CLUSTER = "test"


@pytest.fixture
async def etcd():
    server = EtcdServer().start()
    try:
        client = await EtcdClient.connect(server.endpoint)
        try:
            yield client
        finally:
            await client.close()
    finally:
        server.stop()


class StopsAsItWins(EtcdClient):
    """A real client whose daemon is told to stop in the instant it creates the leader key."""

    stop: asyncio.Event

    async def create_if_absent(self, key, value, *, lease=None):
        created = await super().create_if_absent(key, value, lease=lease)
        self.stop.set()
        return created


@pytest.mark.timeout(30)
async def test_a_standby_told_to_stop_while_it_watches_stops_and_leaves_no_key(etcd):
    other = await etcd.lease(30)
    await etcd.put(leader_key(CLUSTER), json.dumps({"pid": 1}).encode(), lease=other)
    leadership, stop = Leadership(etcd, CLUSTER, 2, "spec.toml"), asyncio.Event()
    campaign = asyncio.ensure_future(leadership.campaign(stop))
    await async_wait_until(lambda: etcd.get_prefix(standby_prefix(CLUSTER)), 10, "the standby key")
    stop.set()
    assert await asyncio.wait_for(campaign, 10) is False
    await leadership.release()
    assert await etcd.get_prefix(standby_prefix(CLUSTER)) == []
    await other.revoke()


@pytest.mark.timeout(30)
async def test_a_daemon_told_to_stop_as_it_wins_the_leader_key_does_not_lead(etcd):
    client = await StopsAsItWins.connect(etcd.endpoints)
    try:
        client.stop = stop = asyncio.Event()
        leadership = Leadership(client, CLUSTER, 2, "spec.toml")
        assert await asyncio.wait_for(leadership.campaign(stop), 10) is False
        assert not leadership.leading
        await leadership.release()
        assert await etcd.get(leader_key(CLUSTER)) is None
        assert await etcd.get_prefix(standby_prefix(CLUSTER)) == []
    finally:
        await client.close()
