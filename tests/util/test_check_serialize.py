"""inspect_serializability: which part of an object cannot be pickled, and the printed search."""

from __future__ import annotations

import io
import threading

import pytest

from actorcore.util import inspect_serializability
from actorcore.util.check_serialize import FailTuple

pytestmark = pytest.mark.timeout(30)

GLOBAL_LOCK = threading.Lock()


class HoldsALock:
    def __init__(self):
        self.lock = threading.Lock()
        self.number = 3


def function_of_an_unimportable_module():
    """A function cloudpickle sends by value (as it does those of ``__main__``), using a global lock."""
    namespace = {"__name__": "a_module_no_worker_can_import", "GLOBAL_LOCK": GLOBAL_LOCK}
    exec("def uses_the_global_lock():\n    return GLOBAL_LOCK\n", namespace)
    return namespace["uses_the_global_lock"]


def check(obj, **kwargs):
    out = io.StringIO()
    ok, failures = inspect_serializability(obj, print_file=out, **kwargs)
    return ok, failures, out.getvalue()


def test_a_serializable_object_passes():
    ok, failures, text = check({"a": [1, 2.0, "three"]}, name="plain")
    assert ok is True and failures == set()
    assert "Checking serializability of" in text and "FAIL" not in text


def test_the_attribute_that_fails_is_found():
    holder = HoldsALock()
    ok, failures, text = check(holder, name="holder")
    assert ok is False
    [failure] = failures
    assert isinstance(failure, FailTuple)
    assert failure.name == "lock" and failure.obj is holder.lock and failure.parent is holder
    assert failure.path == "holder -> lock"
    assert "!!! FAIL serialization: cannot pickle '_thread.lock' object" in text
    assert "Serializing 'lock'" in text and "holder -> lock" in text


def test_a_global_a_function_uses_is_found():
    ok, failures, text = check(function_of_an_unimportable_module())
    assert not ok
    assert {(f.name, f.obj) for f in failures} == {("GLOBAL_LOCK", GLOBAL_LOCK)}
    assert "uses_the_global_lock" in text


def test_a_closure_variable_and_items_of_containers_are_found():
    lock = threading.Lock()

    def closure():
        return lock

    ok, failures, _ = check([1, {"inner": closure}], name="outer")
    assert not ok
    assert {f.path for f in failures} == {"outer -> [1] -> 'inner' -> lock"}


def test_depth_bounds_the_search():
    ok, failures, text = check([[HoldsALock()]], name="nested", depth=1)
    assert not ok
    assert {f.path for f in failures} == {"nested -> [0]"}
    assert "depth limit reached" in text


def test_a_negative_depth_is_refused():
    with pytest.raises(ValueError, match="depth must be >= 0"):
        inspect_serializability(1, depth=-1, print_file=io.StringIO())
