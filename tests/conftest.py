"""Fixtures every test directory may use: a real etcd per test, checked to leave nothing behind."""

import os

import pytest

from actorcore.gcs.etcd_server import EtcdServer
from actorcore.testing import is_alive


def stop_and_check(server: EtcdServer) -> None:
    """Stop ``server`` and assert that neither its etcd nor its throwaway data dir is left."""
    pid, data_dir = server._pid, server._data_dir
    server.stop()
    assert not server.running
    assert pid is None or not is_alive(pid), f"etcd pid {pid} still running"
    if server._persistent_dir is None:
        assert data_dir is None or not os.path.exists(data_dir), f"{data_dir} left behind"


@pytest.fixture
def etcd_server():
    server = EtcdServer().start()
    try:
        yield server
    finally:
        stop_and_check(server)
