"""EtcdClient.watch_prefix against a real etcd, including etcd restarts."""

import asyncio

import aetcd
import pytest

from actorcore.gcs.etcd_client import WatchCompactedError, WatchEvent
from actorcore.testing import capture_logs


async def _collect(watch, into: list, stop_key: str) -> None:
    async for event in watch:
        into.append(event)
        if event.key == stop_key:
            return


async def test_watch_sees_puts_and_deletes_in_order(etcd):
    await etcd.put("/w/old", b"before the watch")
    async with etcd.watch_prefix("/w/") as watch:
        await etcd.put("/w/a", b"1")
        await etcd.put("/other", b"not watched")
        await etcd.put("/w/b", b"2")
        await etcd.delete("/w/a")
        events = [await anext(watch) for _ in range(3)]
    assert [(e.type, e.key, e.value) for e in events] == [
        ("put", "/w/a", b"1"), ("put", "/w/b", b"2"), ("delete", "/w/a", None)]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))


async def test_watch_from_a_revision_replays_history(etcd):
    await etcd.put("/h/a", b"1")
    _items, revision = await etcd.get_prefix_with_revision("/h/")
    await etcd.put("/h/b", b"2")
    async with etcd.watch_prefix("/h/", start_revision=revision + 1) as watch:
        assert await anext(watch) == WatchEvent("put", "/h/b", b"2", revision + 1)
    async with etcd.watch_prefix("/h/", start_revision=1) as watch:
        assert (await anext(watch)).key == "/h/a"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_watch_survives_an_etcd_restart(etcd_server, etcd, kill):
    received: list[WatchEvent] = []
    with capture_logs() as logs:
        await _write_across_restart(etcd_server, etcd, kill, received)
    assert any(entry["event"] == "etcd watch resumed" for entry in logs), "no reconnect seen"
    keys = [(e.type, e.key) for e in received]
    assert keys == ([("put", f"/w/{i}") for i in range(10)]
                    + [("delete", "/w/0"), ("put", "/w/end")])
    revisions = [e.revision for e in received]
    assert revisions == sorted(set(revisions)), "an event was duplicated or reordered"


async def _write_across_restart(etcd_server, etcd, kill, received):
    async with etcd.watch_prefix("/w/") as watch:
        reader = asyncio.create_task(_collect(watch, received, "/w/end"))
        for i in range(5):
            await etcd.put(f"/w/{i}", b"before")
        await asyncio.to_thread(etcd_server.restart, kill=kill)
        for i in range(5, 10):
            await etcd.put(f"/w/{i}", b"after")  # some land before the watch is back
        await etcd.delete("/w/0")
        await etcd.put("/w/end", b"")
        await asyncio.wait_for(reader, timeout=15)


async def test_multi_key_transaction_events_all_arrive(etcd_server, etcd):
    async with etcd.watch_prefix("/tx/") as watch:
        async with aetcd.Client(host="127.0.0.1", port=etcd_server.port) as raw:
            await raw.transaction(compare=[], success=[
                raw.transactions.put(b"/tx/a", b"1"), raw.transactions.put(b"/tx/b", b"2")],
                failure=[])
        events = [await anext(watch) for _ in range(2)]
    assert [e.key for e in events] == ["/tx/a", "/tx/b"]
    assert events[0].revision == events[1].revision


async def test_compacted_revision_is_a_clear_error(etcd_server, etcd):
    for i in range(3):
        await etcd.put("/c/k", str(i).encode())
    _, revision = await etcd.get_prefix_with_revision("/c/")
    async with aetcd.Client(host="127.0.0.1", port=etcd_server.port) as raw:
        await raw.compact(revision, physical=True)
    watch = etcd.watch_prefix("/c/", start_revision=1)

    async def first_event():
        await watch.start()
        return await anext(watch)

    with pytest.raises(WatchCompactedError, match="compacted"):
        await first_event()
    await watch.aclose()


async def test_closing_stops_a_waiting_reader(etcd):
    watch = await etcd.watch_prefix("/z/").start()
    reader = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.05)  # let the reader block on the stream
    await watch.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, timeout=5)


async def test_client_close_ends_its_watches(etcd_server):
    from actorcore.gcs.etcd_client import EtcdClient

    client = await EtcdClient.connect(etcd_server.endpoint)
    watch = await client.watch_prefix("/z/").start()
    reader = asyncio.create_task(_collect(watch, [], "/never"))
    await asyncio.sleep(0.05)
    await client.close()
    await asyncio.wait_for(reader, timeout=5)


@pytest.mark.timeout(30)
async def test_watch_resumes_after_an_outage_with_nobody_reading(etcd_server, etcd):
    async with etcd.watch_prefix("/o/") as watch:
        await etcd.put("/o/1", b"read before the outage")
        assert (await anext(watch)).key == "/o/1"
        await etcd.put("/o/2", b"sent before the outage, read after it")
        await asyncio.to_thread(etcd_server.interrupt)
        await asyncio.sleep(1.5)  # an outage long enough for gRPC's reconnect backoff
        await asyncio.to_thread(etcd_server.resume)
        await etcd.put("/o/3", b"written while the watch is still disconnected")
        await etcd.delete("/o/1")
        events = [await asyncio.wait_for(anext(watch), 10) for _ in range(3)]
        await etcd.put("/o/end", b"")
        assert (await asyncio.wait_for(anext(watch), 10)).key == "/o/end"
    assert [(e.type, e.key) for e in events] == [
        ("put", "/o/2"), ("put", "/o/3"), ("delete", "/o/1")]
