"""What can go wrong talking to etcd: the errors `EtcdClient` raises, and how a failed call
is classified (worth retrying, a stale auth token, rejected credentials).

aetcd wraps gRPC errors in its own exceptions; the classifiers look through that wrapping at
the gRPC status code and details.
"""

from __future__ import annotations

import asyncio

import aetcd.exceptions
import grpc
import tenacity

__all__ = [
    "EtcdAuthError",
    "EtcdUnavailableError",
    "WatchCompactedError",
    "as_client_error",
    "describe",
    "is_auth_failure",
    "is_retryable",
    "is_stale_token",
    "is_transient",
    "retry_backoff",
    "status_code",
]

_TRANSIENT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class EtcdUnavailableError(ConnectionError):
    """etcd could not be reached within the retry deadline."""

    def __init__(self, endpoints: list[str], what: str, seconds: float, cause: BaseException):
        self.endpoints = endpoints
        super().__init__(
            f"etcd is unreachable at {','.join(endpoints)}: {what} kept failing for "
            f"{seconds:.1f} s (last error: {describe(cause)}). Is etcd running there? "
            "For local use let actorcore start one (init() without an address, or "
            "`python -m actorcore.gcs.etcd_server`), or pass --etcd host:port[,host:port] "
            "naming a reachable etcd cluster."
        )


class EtcdAuthError(PermissionError):
    """etcd rejected the credentials, requires some that were not given, or denies the user
    an operation."""

    def __init__(self, endpoints: list[str], user: str | None, what: str, cause: BaseException):
        self.endpoints = endpoints
        self.user = user
        where = ",".join(endpoints)
        details = _details(cause)
        if "user name is empty" in details:
            message = (f"etcd at {where} requires authentication ({details}): pass its user and "
                       "password (--etcd-user/--etcd-password, or auth={'user': ..., 'password': ...})")
        elif status_code(cause) == grpc.StatusCode.PERMISSION_DENIED:
            message = (f"etcd at {where} denies user {user!r} to {what} ({details}): grant the user's "
                       "role read and write on the /actorcore/ prefix, e.g. `etcdctl role "
                       "grant-permission ROLE --prefix=true readwrite /actorcore/`")
        else:
            message = (f"etcd at {where} rejected the credentials of user {user!r} ({details}): "
                       "check --etcd-user and --etcd-password (auth['user'], auth['password'])")
        super().__init__(message)


class WatchCompactedError(RuntimeError):
    """A watch cannot resume: etcd compacted the revisions it had not seen yet."""

    def __init__(self, prefix: str, revision: int, compact_revision: int):
        self.revision = revision
        self.compact_revision = compact_revision
        super().__init__(
            f"watch on {prefix!r} cannot resume at revision {revision}: etcd compacted its "
            f"history up to revision {compact_revision}. Re-read the prefix and watch again "
            "from the revision of that read."
        )


def describe(error: BaseException) -> str:
    """A short description of a failed call's error, for messages and logs."""
    if isinstance(error, asyncio.TimeoutError):
        return "timed out"
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _rpc_error(error: BaseException) -> grpc.aio.AioRpcError | None:
    """The gRPC error behind ``error`` (aetcd wraps them in its own exceptions)."""
    for candidate in (error, error.__cause__):
        if isinstance(candidate, grpc.aio.AioRpcError):
            return candidate
    return None


def status_code(error: BaseException) -> grpc.StatusCode | None:
    """The gRPC status code behind ``error``, None if it is not a gRPC error."""
    rpc_error = _rpc_error(error)
    return rpc_error.code() if rpc_error is not None else None


def _details(error: BaseException) -> str:
    rpc_error = _rpc_error(error)
    return (rpc_error.details() or "") if rpc_error is not None else str(error)


def is_auth_failure(error: BaseException) -> bool:
    """Wrong credentials, none given where etcd needs some, or a permission denied."""
    code = status_code(error)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return True
    return code == grpc.StatusCode.INVALID_ARGUMENT and any(
        text in _details(error) for text in ("authentication failed", "user name is empty"))


def is_stale_token(error: BaseException) -> bool:
    """etcd no longer knows our auth token (it restarted, or the token timed out)."""
    return status_code(error) == grpc.StatusCode.UNAUTHENTICATED and "invalid auth token" in _details(error)


def is_transient(error: BaseException) -> bool:
    """etcd could not be reached or did not answer in time: another attempt may succeed."""
    if isinstance(error, (aetcd.exceptions.ConnectionFailedError,
                          aetcd.exceptions.ConnectionTimeoutError, asyncio.TimeoutError)):
        return True
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in _TRANSIENT_CODES


def is_retryable(error: BaseException) -> bool:
    """Worth another attempt: a transient failure, or a stale token (after authenticating)."""
    return is_transient(error) or is_stale_token(error)


def retry_backoff(max_wait: float) -> tenacity.wait.wait_base:
    """The wait between attempts: 50 ms, doubling up to ``max_wait``, plus up to 50 ms of jitter."""
    return tenacity.wait_exponential(multiplier=0.05, max=max_wait) + tenacity.wait_random(0, 0.05)


def as_client_error(error: Exception, endpoints: list[str], user: str | None, what: str,
                    seconds: float) -> Exception:
    """The error to raise once retrying ``what`` gave up on ``error``: `EtcdUnavailableError`
    for a transient failure, `EtcdAuthError` for rejected credentials, else ``error`` itself."""
    if is_transient(error):
        return EtcdUnavailableError(endpoints, what, seconds, error)
    if is_auth_failure(error):
        return EtcdAuthError(endpoints, user, what, error)
    return error
