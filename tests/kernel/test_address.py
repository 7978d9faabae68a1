"""`listening_here`: a Unix socket proves that a system runs on this host."""

from __future__ import annotations

import socket
import sys
import uuid

import pytest

from actorcore.kernel.address import listening_here

pytestmark = pytest.mark.timeout(10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract Unix sockets are Linux's")
def test_an_abstract_socket_is_seen_only_while_it_is_open():
    name = f"\0actorcore-test-{uuid.uuid4().hex}"
    assert not listening_here(name)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(name)
        server.listen()
        assert listening_here(name)
        assert not listening_here(name[:-1])  # a prefix of a name is another name
    assert not listening_here(name)


def test_a_socket_file_is_seen_while_it_exists(tmp_path):
    path = str(tmp_path / "s.sock")
    assert not listening_here(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        assert listening_here(path)
    assert not listening_here("")
