"""`Watch`: every change under a key prefix, as an async iterator of `WatchEvent` that
survives disconnects and etcd restarts.

A broken stream is re-created from the last seen revision + 1, so no event is lost or
delivered twice; if etcd compacted that revision away the iterator raises
`WatchCompactedError` (re-read the prefix and watch again). The watch is our own loop on
aetcd's gRPC stub rather than aetcd's watcher, which cannot resume after a broken stream.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from typing import Literal

import aetcd.exceptions
import grpc
import tenacity
from aetcd import rpc
from aetcd.utils import prefix_range_end

from .._logging import get_logger
from .etcd_connection import EtcdConnection, within
from .etcd_errors import (
    WatchCompactedError,
    as_client_error,
    describe,
    is_retryable,
    is_stale_token,
    is_transient,
    retry_backoff,
)

__all__ = ["Watch", "WatchEvent"]

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change under a watched prefix: a put (with the new value) or a delete."""

    type: Literal["put", "delete"]
    key: str
    value: bytes | None
    revision: int


class Watch:
    """Async iterator of `WatchEvent` under a prefix that resumes across reconnects.

    Made by `EtcdClient.watch_prefix`, not directly; ``on_close`` is told when it closes."""

    def __init__(self, connection: EtcdConnection, prefix: str, start_revision: int | None,
                 on_close: Callable[[Watch], None] | None = None):
        self._connection = connection
        self.prefix = prefix
        self._next_revision = start_revision
        self._on_close = on_close
        self._call: grpc.aio.StreamStreamCall | None = None
        self._buffer: collections.deque[WatchEvent] = collections.deque()
        self._established_once = False
        self._closed = False

    @property
    def next_revision(self) -> int | None:
        """The revision the watch resumes from (None until first established)."""
        return self._next_revision

    async def start(self) -> Watch:
        """Establish the watch; raise `EtcdUnavailableError` if etcd cannot be reached."""
        if self._call is None and not self._closed:
            await self._open()
        return self

    async def aclose(self) -> None:
        """Stop watching; an ``async for`` over the watch then ends."""
        self._closed = True
        self._drop_call()
        if self._on_close is not None:
            self._on_close(self)

    async def __aenter__(self) -> Watch:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            if self._call is None:
                await self._open()
                if self._call is None:  # closed while opening
                    continue
            call = self._call
            try:
                response = await call.read()
            except asyncio.CancelledError:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            except grpc.aio.AioRpcError as e:
                self._lost_stream(call, describe(e))
                continue
            if response is grpc.aio.EOF:
                self._lost_stream(call, "stream ended")
                continue
            self._handle(response)
        return self._buffer.popleft()

    def _handle(self, response) -> None:
        if response.compact_revision:
            self._closed = True
            self._drop_call()
            raise WatchCompactedError(self.prefix, self._next_revision or 0,
                                      response.compact_revision)
        if response.canceled:
            self._closed = True
            self._drop_call()
            raise RuntimeError(f"etcd cancelled the watch on {self.prefix!r}: "
                               f"{response.cancel_reason or 'no reason given'}")
        # A revision's events always arrive in one response, so skip what we have seen
        # (a resumed watch replays from the revision we asked for) and move on as a block.
        next_revision = self._next_revision or 0
        last = None
        for event in response.events:
            revision = event.kv.mod_revision
            if revision < next_revision:
                continue
            last = revision
            is_put = event.type == rpc.Event.PUT
            self._buffer.append(WatchEvent(
                type="put" if is_put else "delete",
                key=event.kv.key.decode(),
                value=event.kv.value if is_put else None,
                revision=revision,
            ))
        if last is not None:
            self._next_revision = last + 1

    async def _open(self) -> None:
        """(Re-)create the watch stream. The first time, give up with EtcdUnavailableError
        after the connection's retry deadline; after that, retry for as long as it takes."""
        connection = self._connection
        deadline = None if self._established_once else connection.retry_deadline
        retrying = tenacity.AsyncRetrying(
            stop=(tenacity.stop_never if deadline is None
                  else tenacity.stop_before_delay(deadline)),
            wait=retry_backoff(max_wait=2.0),
            retry=tenacity.retry_if_exception(is_retryable),
            reraise=True,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        what = f"watch {self.prefix!r}"
        try:
            async for attempt in retrying:
                with attempt:
                    await self._open_once()
        except Exception as e:
            error = as_client_error(e, connection.endpoints, connection.user, what, loop.time() - started)
            if error is e:
                raise
            raise error from e
        if self._established_once:
            log.info("etcd watch resumed", prefix=self.prefix, revision=self._next_revision)
        self._established_once = True

    async def _open_once(self) -> None:
        index, client = self._connection.current()
        await client.connect()
        call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        request = rpc.WatchCreateRequest(
            key=self.prefix.encode(),
            range_end=prefix_range_end(self.prefix.encode()),
            start_revision=self._next_revision or 0,
        )
        try:
            await call.write(rpc.WatchRequest(create_request=request))
            response = await within(self._connection.request_timeout, call.read())
        except Exception as e:
            call.cancel()
            if _is_broken_write(e):
                self._connection.failed(index)
                raise aetcd.exceptions.ConnectionFailedError("watch stream broke while opening") from e
            if is_transient(e):
                self._connection.failed(index)
            elif is_stale_token(e):
                await client.reauthenticate()
            raise
        if response is grpc.aio.EOF or not response.created:
            call.cancel()
            raise aetcd.exceptions.ConnectionFailedError("watch stream ended while opening")
        if self._closed:  # closed while opening: keep no stream
            call.cancel()
            return
        if self._next_revision is None:
            self._next_revision = response.header.revision + 1
        self._call = call
        self._handle(response)

    def _lost_stream(self, call, reason: str) -> None:
        if call is self._call:
            self._drop_call()
        log.warning("etcd watch stream lost, resuming", prefix=self.prefix,
                    revision=self._next_revision, reason=reason)

    def _drop_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()


def _is_broken_write(error: BaseException) -> bool:
    """How gRPC reports a write to a stream whose connection broke under it (etcd restarting):
    status INTERNAL, the send's "execute_batch" failed. The stream is lost, not etcd broken."""
    return (isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.INTERNAL
            and "execute_batch" in (error.debug_error_string() or ""))
