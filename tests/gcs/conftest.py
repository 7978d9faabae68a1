"""Fixtures for the GCS tests: a real etcd per test, checked to leave nothing behind."""

import asyncio
import os
import time

import pytest

from actorcore.gcs.etcd_client import EtcdClient
from actorcore.gcs.etcd_server import EtcdServer


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1][:1] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)
    return True


async def async_wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    """`wait_until` for an async ``predicate``."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            return bool(await predicate())
        await asyncio.sleep(interval)
    return True


def stop_and_check(server: EtcdServer) -> None:
    """Stop ``server`` and assert that neither its etcd nor its throwaway data dir is left."""
    pid, data_dir = server._pid, server._data_dir
    server.stop()
    assert not server.running
    assert pid is None or not pid_alive(pid), f"etcd pid {pid} still running"
    if server._persistent_dir is None:
        assert data_dir is None or not os.path.exists(data_dir), f"{data_dir} left behind"


@pytest.fixture
def etcd_server():
    server = EtcdServer().start()
    try:
        yield server
    finally:
        stop_and_check(server)


@pytest.fixture
async def etcd(etcd_server):
    client = await EtcdClient.connect(etcd_server.endpoint)
    try:
        yield client
    finally:
        await client.close()
