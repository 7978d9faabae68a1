"""How a failed etcd call is classified and which error the client raises for it (no etcd)."""

import asyncio

import aetcd.exceptions
import grpc
import pytest
from grpc import aio

from actorcore.gcs.etcd_errors import (
    EtcdAuthError,
    EtcdUnavailableError,
    as_client_error,
    describe,
    is_auth_failure,
    is_retryable,
    is_stale_token,
    is_transient,
)
from actorcore.gcs.etcd_watch import _is_broken_write

ENDPOINTS = ["10.0.0.1:2379", "10.0.0.2:2379"]


def rpc_error(code: grpc.StatusCode, details: str) -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details=details)


def wrapped(error: BaseException) -> aetcd.exceptions.ClientError:
    """What aetcd raises: its own exception, the gRPC error as its cause."""
    try:
        raise aetcd.exceptions.ClientError("etcd call failed") from error
    except aetcd.exceptions.ClientError as e:
        return e


UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
STALE = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
BAD_PASSWORD = rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                         "etcdserver: authentication failed, invalid user ID or password")
NO_USER = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
DENIED = rpc_error(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
NOT_FOUND = rpc_error(grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")


@pytest.mark.parametrize("error", [
    UNAVAILABLE,
    rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"),
    asyncio.TimeoutError(),
    aetcd.exceptions.ConnectionFailedError("down"),
    aetcd.exceptions.ConnectionTimeoutError("slow"),
])
def test_unreachable_or_slow_is_transient_and_retried(error):
    assert is_transient(error) and is_retryable(error)
    assert not is_auth_failure(error)


def test_a_stale_token_is_retried_but_not_transient():
    for error in (STALE, wrapped(STALE)):
        assert is_stale_token(error) and is_retryable(error)
        assert not is_transient(error) and not is_auth_failure(error)


@pytest.mark.parametrize("error", [BAD_PASSWORD, NO_USER, DENIED, wrapped(DENIED)])
def test_rejected_credentials_are_auth_failures_and_not_retried(error):
    assert is_auth_failure(error)
    assert not is_retryable(error)


def test_other_errors_are_neither():
    old_auth_store = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "etcdserver: revision of auth store is old")
    for error in (NOT_FOUND, old_auth_store, ValueError("bug")):
        assert not (is_transient(error) or is_stale_token(error) or is_auth_failure(error))


def test_unavailable_names_the_endpoints_what_failed_and_for_how_long():
    error = as_client_error(UNAVAILABLE, ENDPOINTS, None, "get '/k'", 5.04)
    assert isinstance(error, EtcdUnavailableError) and isinstance(error, ConnectionError)
    assert error.endpoints == ENDPOINTS
    message = str(error)
    assert "10.0.0.1:2379,10.0.0.2:2379" in message and "get '/k'" in message and "5.0 s" in message
    assert "UNAVAILABLE: connection refused" in message and "--etcd" in message


@pytest.mark.parametrize(("cause", "expected"), [
    (NO_USER, "requires authentication"),
    (BAD_PASSWORD, "rejected the credentials of user 'alice'"),
    (wrapped(DENIED), "denies user 'alice' to put '/k'"),
])
def test_auth_errors_say_what_to_change(cause, expected):
    error = as_client_error(cause, ENDPOINTS, "alice", "put '/k'", 0.1)
    assert isinstance(error, EtcdAuthError) and isinstance(error, PermissionError)
    assert error.user == "alice" and expected in str(error)


def test_any_other_error_is_raised_as_it_is():
    assert as_client_error(NOT_FOUND, ENDPOINTS, None, "revoke", 0.1) is NOT_FOUND


def test_describe_is_short():
    assert describe(asyncio.TimeoutError()) == "timed out"
    assert describe(UNAVAILABLE) == "UNAVAILABLE: connection refused"
    assert describe(ValueError("bad")) == "ValueError: bad"
    assert describe(KeyError()) == "KeyError"


def test_a_watch_write_that_broke_with_its_connection_is_told_from_other_internal_errors():
    # What grpc raised when a watch was re-created while etcd restarted.
    broken = aio.AioRpcError(grpc.StatusCode.INTERNAL, aio.Metadata(), aio.Metadata(),
                             details="Internal error from Core",
                             debug_error_string='Failed "execute_batch": (<SendMessageOperation>,)')
    assert _is_broken_write(broken)
    assert not _is_broken_write(rpc_error(grpc.StatusCode.INTERNAL, "etcdserver: corrupt cluster"))
    assert not _is_broken_write(UNAVAILABLE)
