"""Sealed etcd records (`actorcore.gcs.sealed`) against a real etcd: what a holder of the
cluster secret writes reads back; anything else is refused, by key, and never returned."""

from __future__ import annotations

import hashlib
import logging
import pickle

import pytest

from actorcore.gcs import SealedEtcd, TamperedRecordError
from actorcore.gcs.sealed import MAGIC, RecordSeal, check_function, function_id

pytestmark = pytest.mark.timeout(60)

KEY = "/actorcore/test/actors/a1"
OTHER = "/actorcore/test/actors/a2"


def test_a_sealed_value_opens_only_at_its_key_with_its_secret():
    seal = RecordSeal("secret")
    sealed = seal.seal(KEY, b"value")
    assert sealed.startswith(MAGIC) and sealed.endswith(b"value")
    assert seal.open(KEY, sealed) == b"value"
    assert seal.seal(KEY, b"value") == sealed  # deterministic: usable in compare-and-swap
    with pytest.raises(TamperedRecordError, match="its seal does not match") as moved:
        seal.open(OTHER, sealed)
    assert moved.value.key == OTHER and "not written by this cluster" in str(moved.value)
    with pytest.raises(TamperedRecordError, match="its seal does not match"):
        RecordSeal("another cluster's secret").open(KEY, sealed)
    with pytest.raises(TamperedRecordError, match="its seal does not match"):
        seal.open(KEY, sealed[:-1] + b"E")
    for unsealed in (b"", b"value", MAGIC + b"short", b"{\"state\": \"ALIVE\"}" * 4):
        with pytest.raises(TamperedRecordError, match="carries no seal"):
            seal.open(KEY, unsealed)


def test_a_refusal_pickles_as_itself_and_names_the_key():
    error = pickle.loads(pickle.dumps(TamperedRecordError(KEY, "its seal does not match")))
    assert type(error) is TamperedRecordError and error.key == KEY
    assert str(error).startswith(f"etcd record {KEY!r} refused: its seal does not match;")


def test_an_exported_function_must_hash_to_its_id():
    blob = pickle.dumps(len)
    assert function_id(blob) == hashlib.sha1(blob).hexdigest()
    assert check_function("functions/x", function_id(blob), blob) == blob
    with pytest.raises(TamperedRecordError, match="do not hash to the function id"):
        check_function("functions/x", function_id(blob), blob + b".")


def test_an_empty_secret_is_refused():
    with pytest.raises(ValueError, match="the cluster secret is empty"):
        RecordSeal("")


async def test_reads_refuse_what_was_not_sealed_and_log_it(etcd, caplog):
    sealed = SealedEtcd(etcd, "secret")
    await sealed.put(KEY, b"good")
    assert await etcd.get(KEY) != b"good"  # stored sealed
    assert await sealed.get(KEY) == b"good"
    await etcd.put(OTHER, b"forged")
    with caplog.at_level(logging.ERROR), pytest.raises(TamperedRecordError) as refused:
        await sealed.get(OTHER)
    assert refused.value.key == OTHER
    # A prefix read leaves the forged record out (logged) and returns the others.
    items, revision = await sealed.get_prefix_with_revision("/actorcore/test/")
    assert items == [(KEY, b"good")] and revision > 0
    assert await sealed.get_prefix("/actorcore/test/") == [(KEY, b"good")]
    assert sum(OTHER in record.getMessage() or OTHER in str(record.__dict__) for record in caplog.records) >= 2


async def test_transactions_compare_sealed_values(etcd):
    sealed = SealedEtcd(etcd, "secret")
    assert await sealed.create_if_absent(KEY, b"actor-1")
    assert not await sealed.create_if_absent(KEY, b"actor-2")
    assert not await sealed.delete_if_value(KEY, b"actor-2")
    assert await sealed.delete_if_value(KEY, b"actor-1")
    assert await sealed.get(KEY) is None


async def test_a_watch_skips_a_forged_put_and_passes_deletes(etcd):
    sealed = SealedEtcd(etcd, "secret")
    async with sealed.watch_prefix("/actorcore/test/") as watch:
        await etcd.put(KEY, b"forged")
        await sealed.put(KEY, b"good")
        await etcd.delete(KEY)
        events = []
        async for event in watch:
            events.append((event.type, event.key, event.value))
            if len(events) == 2:
                break
    assert events == [("put", KEY, b"good"), ("delete", KEY, None)]


async def test_the_client_calls_that_carry_no_value_pass_through(etcd):
    sealed = SealedEtcd(etcd, "secret")
    lease = await sealed.lease(5)
    await sealed.put(KEY, b"leased", lease=lease)
    assert sealed.endpoints == etcd.endpoints and not sealed.tls and sealed.user is None
    await lease.revoke()
    assert await sealed.get(KEY) is None
    await sealed.put(OTHER, b"x")
    assert await sealed.delete_prefix("/actorcore/test/") == 1
