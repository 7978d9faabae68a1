"""Fixtures for the GCS tests: an etcd client of the test's etcd (`etcd_server`, from the
top-level conftest)."""

import pytest

from actorcore.gcs.etcd_client import EtcdClient

from ..conftest import stop_and_check

__all__ = ["stop_and_check"]


@pytest.fixture
async def etcd(etcd_server):
    client = await EtcdClient.connect(etcd_server.endpoint)
    try:
        yield client
    finally:
        await client.close()
