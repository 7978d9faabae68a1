"""Fixtures for the runtime-env tests: a sealed client of the test's etcd (`etcd_server`, from the
top-level conftest)."""

import pytest

from actorcore.gcs import SealedEtcd
from actorcore.gcs.etcd_client import EtcdClient


@pytest.fixture
async def sealed_etcd(etcd_server):
    client = await EtcdClient.connect(etcd_server.endpoint)
    try:
        yield SealedEtcd(client, "secret")
    finally:
        await client.close()
