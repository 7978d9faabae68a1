"""Exit, StartInfo and ChildSpec: values and validation."""

import math
import signal

import pytest

from supervisor import Backoff, Child, ChildSpec, Exit, StartInfo
from supervisor.testing import FakeChild


def start(info):  # pragma: no cover - never called
    raise AssertionError


def test_exit_kinds_and_abnormal():
    assert not Exit("normal").abnormal
    assert not Exit("shutdown").abnormal
    for kind in ("crashed", "killed", "restarts_exhausted"):
        assert Exit(kind).abnormal
    with pytest.raises(ValueError, match=r"kind='oops'.*'normal'"):
        Exit("oops")  # type: ignore[arg-type]


def test_exit_from_returncode():
    assert Exit.from_returncode(0) == Exit("normal", code=0)
    assert Exit.from_returncode(3) == Exit("crashed", code=3)
    assert Exit.from_returncode(-9) == Exit("killed", signal=9)


def test_exit_str_is_readable():
    assert str(Exit("normal")) == "normal"
    assert str(Exit("killed", signal=signal.SIGKILL)) == "killed (by SIGKILL)"
    assert str(Exit("crashed", code=3)) == "crashed (exit code 3)"
    assert str(Exit("crashed", error=ValueError("bad"))) == "crashed (ValueError: bad)"
    assert "gave up" in str(Exit("restarts_exhausted", detail="gave up"))


def test_exit_is_frozen():
    with pytest.raises(AttributeError):
        Exit("normal").kind = "crashed"  # type: ignore[misc]


def test_start_info_defaults():
    assert StartInfo() == StartInfo(incarnation=0, cause=None, args=())


def test_spec_defaults():
    spec = ChildSpec("w", start)
    assert (spec.restart, spec.shutdown, spec.type, spec.backoff) == ("permanent", 5.0, "worker", None)
    assert spec.shutdown_timeout == 5.0
    sup = ChildSpec("s", start, type="supervisor")
    assert sup.shutdown == "infinity" and sup.shutdown_timeout is None
    assert ChildSpec("b", start, shutdown="brutal_kill").shutdown_timeout == 0
    assert ChildSpec("i", start, shutdown=math.inf).shutdown_timeout is None
    assert ChildSpec("n", start, shutdown=2).shutdown_timeout == 2.0


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(id=""), ValueError, "id=''"),
        (dict(id=3), ValueError, "id=3"),
        (dict(start="nope"), TypeError, "'w'.*start='nope' is not callable"),
        (dict(restart="always"), ValueError, "'w'.*restart='always'.*'permanent', 'transient', 'temporary'"),
        (dict(type="thread"), ValueError, "'w'.*type='thread'.*'worker', 'supervisor'"),
        (dict(shutdown=-1), ValueError, "'w'.*shutdown=-1.*'brutal_kill' or 'infinity'"),
        (dict(shutdown="never"), ValueError, "shutdown='never'"),
        (dict(shutdown=True), ValueError, "shutdown=True"),
        (dict(shutdown=math.nan), ValueError, "shutdown=nan"),
        (dict(backoff={"min": 1}), TypeError, "backoff=.*not a Backoff"),
    ],
)
def test_bad_spec_values_name_the_field_and_the_fix(kwargs, error, pattern):
    args = dict(id="w", start=start) | kwargs
    with pytest.raises(error, match=pattern):
        ChildSpec(**args)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(min=-1), "min=-1 is negative"),
        (dict(min=2, max=1), "max=1 is smaller than min=2"),
        (dict(jitter="x"), "jitter='x' is not a number"),
        (dict(reset_after=-0.1), "reset_after=-0.1"),
    ],
)
def test_bad_backoff_values(kwargs, pattern):
    with pytest.raises((TypeError, ValueError), match=pattern):
        Backoff(**kwargs)


async def test_fake_child_is_a_child():
    assert isinstance(FakeChild(), Child)
