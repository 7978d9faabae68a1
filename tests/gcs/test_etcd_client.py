"""EtcdClient against a real etcd: key-value calls, names, leases, errors."""

import asyncio
import socket
import time

import aetcd
import pytest

from actorcore.gcs.etcd_client import EtcdClient, EtcdUnavailableError
from actorcore.gcs.etcd_server import EtcdServer
from actorcore.testing import async_wait_until

from .conftest import stop_and_check


def _dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def _wait_for_keys_gone(etcd, keys: list[str], timeout: float, what: str) -> None:
    async def gone():
        return all([await etcd.get(key) is None for key in keys])

    await async_wait_until(gone, timeout, what)


async def _let_a_lease_expire(etcd, ttl: int) -> None:
    """Grant a lease of ``ttl`` seconds that nobody keeps alive and wait until etcd deletes its
    key: proof, by etcd's own clock, that any lease granted earlier with a TTL <= ``ttl`` and
    not kept alive is gone too."""
    witness = await etcd.lease(ttl, keepalive=False)
    key = f"/witness/{witness.id:x}"
    await etcd.put(key, b"", lease=witness)
    await _wait_for_keys_gone(etcd, [key], ttl + 10, f"etcd to expire a lease of {ttl} s")


async def test_get_put_delete(etcd):
    assert await etcd.get("/t/a") is None
    await etcd.put("/t/a", b"1")
    assert await etcd.get("/t/a") == b"1"
    await etcd.put("/t/a", b"\x00\xff binary")
    assert await etcd.get("/t/a") == b"\x00\xff binary"
    assert await etcd.delete("/t/a") is True
    assert await etcd.delete("/t/a") is False
    assert await etcd.get("/t/a") is None


async def test_prefix_calls(etcd):
    for key in ["/p/b", "/p/a", "/p/c/d", "/pp/x", "/q"]:
        await etcd.put(key, key.encode())
    assert await etcd.get_prefix("/p/") == [("/p/a", b"/p/a"), ("/p/b", b"/p/b"),
                                            ("/p/c/d", b"/p/c/d")]
    items, revision = await etcd.get_prefix_with_revision("/p/")
    assert len(items) == 3 and revision >= 5
    assert await etcd.delete_prefix("/p/") == 3
    assert await etcd.get_prefix("/p/") == []
    assert await etcd.get("/pp/x") == b"/pp/x"


async def test_delete_if_value_deletes_only_an_unchanged_key(etcd):
    await etcd.put("/leader", b"old")
    assert await etcd.delete_if_value("/leader", b"other") is False
    assert await etcd.get("/leader") == b"old"
    assert await etcd.delete_if_value("/leader", b"old") is True
    assert await etcd.get("/leader") is None
    assert await etcd.delete_if_value("/leader", b"old") is False  # nothing to delete


async def test_create_if_absent_makes_names_unique(etcd_server, etcd):
    others = [await EtcdClient.connect(etcd_server.endpoint) for _ in range(3)]
    clients = [etcd, *others]
    try:
        results = await asyncio.gather(*(
            clients[i % len(clients)].create_if_absent("/named/ns/x", f"actor-{i}".encode())
            for i in range(20)))
    finally:
        for client in others:
            await client.close()
    assert results.count(True) == 1
    winner = results.index(True)
    assert await etcd.get("/named/ns/x") == f"actor-{winner}".encode()
    assert await etcd.create_if_absent("/named/ns/x", b"again") is False
    await etcd.delete("/named/ns/x")
    assert await etcd.create_if_absent("/named/ns/x", b"after delete") is True


@pytest.mark.timeout(40)
async def test_lease_expiry_removes_keys(etcd):
    lease = await etcd.lease(2, keepalive=False)
    assert lease.ttl == 2
    await etcd.put("/nodes/n1", b"alive", lease=lease)
    assert await etcd.create_if_absent("/named/ns/leased", b"a1", lease=lease)
    assert await etcd.get("/nodes/n1") == b"alive"
    started = time.monotonic()
    await _wait_for_keys_gone(etcd, ["/nodes/n1", "/named/ns/leased"], 10,
                              "etcd to delete the keys of a lease nobody kept alive")
    print(f"leased keys gone after {time.monotonic() - started:.2f} s (ttl 2 s)")


@pytest.mark.timeout(40)
async def test_keepalive_keeps_keys_past_ttl_until_stopped(etcd):
    lease = await etcd.lease(1)
    await etcd.put("/nodes/n2", b"alive", lease=lease)
    await _let_a_lease_expire(etcd, ttl=2)  # two TTLs of `lease`: only keepalives keep it
    assert await etcd.get("/nodes/n2") == b"alive"
    assert not lease.lost
    await lease.stop_keepalive()
    await _wait_for_keys_gone(etcd, ["/nodes/n2"], 10, "etcd to delete the key once keepalives stop")


async def test_revoke_deletes_at_once(etcd):
    lease = await etcd.lease(30)
    await etcd.put("/nodes/n3", b"alive", lease=lease)
    await lease.revoke()
    assert await etcd.get("/nodes/n3") is None
    assert lease.lost
    await lease.revoke()  # revoking twice is fine



@pytest.mark.timeout(20)
async def test_a_stop_that_lands_as_a_refresh_answers_still_ends_the_keepalive(etcd):
    """stop_keepalive called in the instant a refresh's reply arrives (the keepalive task not yet
    resumed) ends the keepalive. A timeout that wraps the call in a task of its own (wait_for
    before Python 3.12) swallows that cancellation: the task refreshed for ever and the stop
    never returned, so a daemon hung on SIGTERM."""
    lease = await etcd.lease(1)  # refreshed every 1/3 s
    connection, stops, stopping = lease._connection, [], asyncio.Event()

    class StopAsTheRefreshAnswers:  # the real connection; the stop starts as the refresh's op returns
        async def call(self, what, op, **kwargs):
            async def op_then_stop(client):
                result = await op(client)
                if what.startswith("refresh") and not stops:
                    stops.append(asyncio.get_running_loop().create_task(lease.stop_keepalive()))
                    stopping.set()
                return result
            return await connection.call(what, op_then_stop, **kwargs)

    lease._connection = StopAsTheRefreshAnswers()
    keepalive = lease._task
    try:
        await asyncio.wait_for(stopping.wait(), timeout=5)
        await asyncio.wait([stops[0]], timeout=5)
        assert stops[0].done() and keepalive.done(), "the keepalive went on after stop_keepalive"
    finally:
        while not keepalive.done():  # without the fix: end the runaway keepalive
            keepalive.cancel()
            await asyncio.wait([keepalive], timeout=0.5)
    await lease.revoke()

@pytest.mark.timeout(20)
async def test_on_lost_runs_when_etcd_drops_the_lease(etcd_server, etcd):
    lost = asyncio.Event()

    async def on_lost(lease):
        lost.set()

    lease = await etcd.lease(1, on_lost=on_lost)
    async with aetcd.Client(port=etcd_server.port, host="127.0.0.1") as raw:
        await raw.revoke_lease(lease.id)
    await asyncio.wait_for(lost.wait(), timeout=5)
    assert lease.lost


@pytest.mark.timeout(30)
async def test_keepalive_survives_an_etcd_restart(etcd_server, etcd):
    lease = await etcd.lease(2)
    await etcd.put("/nodes/n4", b"alive", lease=lease)
    await asyncio.to_thread(etcd_server.restart)
    # A lease granted after the restart expires after `lease` would have (etcd renews every
    # lease by its TTL, plus an election timeout, when it comes back): only keepalives save it.
    await _let_a_lease_expire(etcd, ttl=3)
    assert await etcd.get("/nodes/n4") == b"alive"
    assert not lease.lost


async def test_calls_retry_across_a_restart(etcd_server, etcd):
    await etcd.put("/r/k", b"before")
    restart = asyncio.create_task(asyncio.to_thread(etcd_server.restart, kill=True))
    await asyncio.sleep(0)
    await etcd.put("/r/k2", b"during")  # may hit the outage: retried until etcd is back
    await restart
    assert await etcd.get("/r/k") == b"before"
    assert await etcd.get("/r/k2") == b"during"


@pytest.mark.timeout(30)
async def test_unreachable_etcd_fails_clearly_once_the_connect_timeout_passes():
    endpoint = _dead_endpoint()
    # Calls may retry for a minute; only the connect timeout (1 s) can end this within 15 s.
    connecting = EtcdClient.connect(endpoint, timeout=1.0, retry_deadline=60, request_timeout=60)
    with pytest.raises(EtcdUnavailableError) as info:
        await asyncio.wait_for(connecting, 15)
    message = str(info.value)
    assert endpoint in message and "--etcd" in message and "Is etcd running" in message
    assert isinstance(info.value, ConnectionError)


@pytest.mark.timeout(30)
async def test_calls_fail_clearly_when_etcd_goes_away():
    server = EtcdServer().start()
    client = await EtcdClient.connect(server.endpoint, retry_deadline=1.0)
    try:
        await client.put("/k", b"v")
        endpoint = server.endpoint
        stop_and_check(server)
        with pytest.raises(EtcdUnavailableError, match=endpoint):
            # Retrying for ever would end in a TimeoutError here; the retry deadline is 1 s.
            await asyncio.wait_for(client.get("/k"), 15)
        with pytest.raises(EtcdUnavailableError):
            async with client.watch_prefix("/w/"):
                pass
    finally:
        await client.close()


async def test_several_endpoints_fail_over(etcd_server):
    client = await EtcdClient.connect(f"{_dead_endpoint()},{etcd_server.endpoint}")
    async with client:
        await client.put("/f/k", b"v")
        assert await client.get("/f/k") == b"v"


def test_endpoint_parsing():
    client = EtcdClient("a:1, http://b:2/,[::1]:5,[::1],host")
    assert client.endpoints == ["a:1", "b:2", "[::1]:5", "[::1]:2379", "host:2379"]
    with pytest.raises(ValueError, match="bad etcd endpoint 'a:b'"):
        EtcdClient("a:b")
    with pytest.raises(ValueError, match="no etcd endpoint given"):
        EtcdClient(" , ")


async def test_persistent_data_survives_a_new_server(tmp_path):
    data_dir = tmp_path / "gcs"
    for expected in (None, b"kept"):
        server = EtcdServer(data_dir=data_dir).start()
        try:
            async with await EtcdClient.connect(server.endpoint) as client:
                assert await client.get("/kept") == expected
                await client.put("/kept", b"kept")
        finally:
            stop_and_check(server)
