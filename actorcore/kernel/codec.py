"""Message (de)serialization for the wire: pickle protocol 5, cloudpickle for what pickle cannot do.

Plain `pickle` is tried first because it is several times faster; values it cannot handle
(lambdas, classes defined in `__main__` of the sender, closures) fall back to cloudpickle,
whose output plain `pickle.loads` reads back.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from .errors import SerializationError

PROTOCOL = 5


def dumps(value: Any, *, what: str) -> bytes:
    """Pickle `value`; on failure raise SerializationError naming `what` and the type."""
    try:
        return pickle.dumps(value, PROTOCOL)
    except Exception:  # noqa: BLE001 - whatever pickle refuses, cloudpickle tries
        pass
    try:
        return cloudpickle.dumps(value, PROTOCOL)
    except Exception as exc:
        raise SerializationError(
            f"cannot send {what}: a value of type {type(value).__qualname__} is not picklable "
            f"({type(exc).__name__}: {exc}); send plain data, or give the type "
            f"__reduce__/__getstate__"
        ) from exc


def loads(data: bytes, *, what: str) -> Any:
    """Unpickle a value received from another process; raises SerializationError naming `what`."""
    try:
        return pickle.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"cannot unpickle {what} ({type(exc).__name__}: {exc}); is the sender's code "
            f"importable in this process?"
        ) from exc


def dumps_error(error: BaseException | None) -> bytes:
    """Pickle an exception for a reply; an unpicklable one is sent as a RemoteError with its text."""
    try:
        return pickle.dumps(error, PROTOCOL)
    except Exception:  # noqa: BLE001 - an unpicklable error goes as text
        return pickle.dumps(RemoteError(f"{type(error).__qualname__}: {error}"), PROTOCOL)


class RemoteError(Exception):
    """Stands for a remote exception that could not be pickled; carries its text."""
