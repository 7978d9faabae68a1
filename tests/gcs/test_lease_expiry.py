"""A lease made with ``expire_locally`` is given up once it cannot be renewed for its TTL while
etcd may be up (a partition), and kept while etcd is down (docs/architecture.md, "Failure
semantics"). The client reaches etcd through a proxy in this test that can cut the link."""

from __future__ import annotations

import asyncio
import socket

import pytest

from actorcore.gcs.etcd_client import EtcdClient
from actorcore.gcs.etcd_lease import NOT_RENEWED

pytestmark = pytest.mark.timeout(60)

TTL = 2


class Proxy:
    """Forwards TCP to etcd until `cut` (bytes are dropped, and new connections get no answer,
    as over a dead link) or `stop_listening` (new connections are refused, as by a stopped etcd
    whose host is up; established ones are dropped)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.forwarding = True
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.blackhole: list[socket.socket] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]
        await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer),
                             return_exceptions=True)

    async def _pump(self, reader, writer) -> None:
        while data := await reader.read(65536):
            if self.forwarding:
                writer.write(data)
                await writer.drain()

    async def cut(self) -> None:
        self.forwarding = False
        port = self.server.sockets[0].getsockname()[1]
        self.server.close()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(0)
        self.blackhole.append(listener)
        for _ in range(4):  # a full accept queue: later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            self.blackhole.append(filler)

    async def stop_listening(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()

    async def close(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        for sock in self.blackhole:
            sock.close()


@pytest.fixture
async def proxy(etcd_server):
    proxy = Proxy(etcd_server.endpoint)
    proxy.endpoint = await proxy.start()
    yield proxy
    await proxy.close()


async def _lease_through(proxy):
    client = await EtcdClient.connect(proxy.endpoint, timeout=5)
    lost = asyncio.get_running_loop().create_future()
    lease = await client.lease(TTL, on_lost=lambda lease: lost.done() or lost.set_result(lease),
                               expire_locally=True)
    return client, lease, lost


async def test_a_lease_that_cannot_be_renewed_while_etcd_may_be_up_is_given_up_within_its_ttl(proxy):
    client, lease, lost = await _lease_through(proxy)
    try:
        await asyncio.sleep(TTL)  # renewed meanwhile
        assert not lost.done()
        await proxy.cut()
        assert await asyncio.wait_for(lost, 20) is lease
        # given up by its own deadline: etcd never said anything
        assert lease.lost and lease.lost_because == NOT_RENEWED
    finally:
        await client.close()


async def test_a_lease_is_kept_while_etcd_refuses_connections(proxy, etcd_server):
    """Refused: nothing listens where etcd was, so etcd expires nothing either (an etcd that
    starts again gives every lease a fresh TTL)."""
    client, lease, lost = await _lease_through(proxy)
    try:
        await proxy.stop_listening()
        await asyncio.sleep(2 * TTL + 1)
        assert not lost.done() and not lease.lost
    finally:
        await client.close()
