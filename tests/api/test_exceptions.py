"""The errors users see: TaskError's dual instances, messages, and pickling of every error."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest

import actorcore.exceptions as exc
from actorcore.exceptions import (
    ActorAlreadyExistsError,
    ActorDiedError,
    ActorUnavailableError,
    GetTimeoutError,
    NodeDiedError,
    ObjectLostError,
    ObjectStoreFullError,
    OwnerDiedError,
    RayActorError,
    RayError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parents[2]


class InsufficientFunds(Exception):
    """A user-defined exception in a user module, with a field of its own."""

    def __init__(self, amount):
        super().__init__(amount)
        self.amount = amount


class TwoArgs(Exception):
    """An exception whose `args` do not match its `__init__`: plain pickle cannot load it."""

    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")
        self.a, self.b = a, b


class Final(Exception):
    """An exception class that refuses subclasses (as a C type without BASETYPE would)."""

    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")


def failing(error: BaseException) -> TaskError:
    """The TaskError a worker builds when the user function raised `error`."""

    def user_function():
        raise error

    try:
        user_function()
    except BaseException as caught:  # noqa: BLE001 - whatever it raises is the cause
        return TaskError.from_exception("user_function", caught, pid=123)
    raise AssertionError("unreachable")


def raised_by_get(error: BaseException) -> BaseException:
    return failing(error).as_instanceof_cause()


def roundtrip(error, dumps=pickle.dumps):
    return pickle.loads(dumps(error))


def test_the_dual_error_is_both_a_task_error_and_the_causes_class():
    error = raised_by_get(ValueError("original message"))
    assert isinstance(error, ValueError)
    assert isinstance(error, TaskError)
    assert isinstance(error, exc.RayTaskError)
    assert isinstance(error, RayError)
    assert isinstance(error, exc.ActorcoreError)
    assert type(error).__name__ == "TaskError(ValueError)"
    assert isinstance(error.cause, ValueError) and type(error.cause) is ValueError
    assert error.args == ("original message",)
    with pytest.raises(ValueError, match="original message"):
        raise error
    with pytest.raises(TaskError):
        raise error


def test_the_message_keeps_the_original_and_shows_the_remote_traceback():
    error = raised_by_get(ValueError("original message"))
    lines = str(error).splitlines()
    assert lines[0] == "ray::user_function() (pid=123)"
    assert lines[-1] == "ValueError: original message"
    assert any("in user_function" in line for line in lines)
    assert any("raise error" in line for line in lines)
    assert not any(line.startswith("Traceback (most recent call last)") for line in lines)


def test_leading_actorcore_frames_are_left_out_of_the_traceback():
    # A stand-in for the worker's frame that calls user code, in a file inside actorcore/.
    worker_file = str(Path(exc.__file__).with_name("_worker_stand_in.py"))
    namespace = {}
    exec(compile("def run(fn):\n    try:\n        fn()\n    except Exception as e:\n"
                 "        return e\n", worker_file, "exec"), namespace)

    def user_code():
        raise ValueError("boom")

    text = str(TaskError.from_exception("user_code", namespace["run"](user_code)))
    assert "_worker_stand_in" not in text
    assert "in user_code" in text and text.endswith("ValueError: boom")


def test_header_without_pid_and_without_a_traceback():
    error = TaskError("f", "", KeyError("k"))
    assert str(error) == "ray::f()\nKeyError: 'k'"


def test_dual_classes_are_cached_per_cause_class():
    a = raised_by_get(ValueError("a"))
    b = raised_by_get(ValueError("b"))
    c = raised_by_get(KeyError("c"))
    assert type(a) is type(b)
    assert type(a) is not type(c)


def test_the_causes_attributes_read_through_the_dual_error():
    error = raised_by_get(InsufficientFunds(42))
    assert isinstance(error, InsufficientFunds)
    assert error.amount == 42
    with pytest.raises(AttributeError):
        error.no_such_attribute


def test_os_errors_keep_their_subclass_and_errno():
    error = raised_by_get(OSError(2, "No such file or directory"))
    assert isinstance(error, FileNotFoundError)
    assert error.errno == 2
    assert str(error).splitlines()[-1].startswith("FileNotFoundError: [Errno 2]")
    copy = roundtrip(error)
    assert isinstance(copy, FileNotFoundError) and copy.errno == 2
    assert copy.strerror == "No such file or directory"


def test_a_cause_that_cannot_be_subclassed_falls_back_to_plain_task_error():
    task_error = failing(Final("no subclass"))
    error = task_error.as_instanceof_cause()
    assert type(error) is TaskError
    assert error is task_error
    assert isinstance(error.cause, Final)
    assert str(error).splitlines()[-1].endswith("Final: no subclass")
    assert type(roundtrip(error)) is TaskError


def test_a_cause_whose_new_refuses_falls_back():
    class Picky(Exception):
        def __new__(cls, *, code):
            return super().__new__(cls)

        def __init__(self, *, code):
            super().__init__(f"code {code}")

    error = failing(Picky(code=7)).as_instanceof_cause()
    assert type(error) is TaskError
    assert isinstance(error.cause, Picky)


def test_a_plain_exception_cause_needs_no_dual_class():
    task_error = failing(Exception("plain"))
    assert task_error.as_instanceof_cause() is task_error


def test_a_ray_error_cause_is_wrapped_too():
    error = raised_by_get(ActorDiedError.killed("Counter(a1)"))
    assert isinstance(error, ActorDiedError)
    assert isinstance(error, TaskError)
    assert error.actor == "Counter(a1)"


def test_nested_task_errors_unwrap_to_the_innermost_cause():
    inner = raised_by_get(ValueError("deep"))
    outer = failing(inner)
    assert outer.cause is inner.cause
    error = outer.as_instanceof_cause()
    assert isinstance(error, ValueError)
    assert error.cause is inner.cause
    assert error.as_instanceof_cause() is error


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_the_dual_error_survives_pickling(dumps):
    error = raised_by_get(ValueError("original message"))
    copy = roundtrip(error, dumps)
    assert type(copy) is type(error)
    assert isinstance(copy, ValueError) and isinstance(copy, TaskError)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert copy.cause.args == ("original message",)
    assert copy.pid == 123 and copy.function_name == "user_function"
    plain = failing(ValueError("x"))
    assert type(roundtrip(plain, dumps)) is TaskError


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_a_user_defined_exception_class_survives_pickling(dumps):
    copy = roundtrip(raised_by_get(InsufficientFunds(42)), dumps)
    assert isinstance(copy, InsufficientFunds) and isinstance(copy, TaskError)
    assert type(copy.cause) is InsufficientFunds
    assert copy.amount == 42
    assert str(copy).splitlines()[-1].endswith("InsufficientFunds: 42")


def test_a_cause_whose_init_does_not_match_its_args_still_unpickles():
    with pytest.raises(TypeError):
        roundtrip(TwoArgs(1, 2))  # what plain pickling of such an exception does
    copy = roundtrip(raised_by_get(TwoArgs(1, 2)))
    assert isinstance(copy, TwoArgs) and isinstance(copy, TaskError)
    assert (copy.a, copy.b, copy.args) == (1, 2, ("1/2",))
    assert (copy.cause.a, copy.cause.b) == (1, 2)


def test_a_locally_defined_exception_class_survives_cloudpickle():
    class LocalError(Exception):
        pass

    copy = roundtrip(raised_by_get(LocalError("here")), cloudpickle.dumps)
    assert isinstance(copy, TaskError)
    assert type(copy.cause).__name__ == "LocalError"
    assert isinstance(copy, type(copy.cause))


def test_the_dual_error_crosses_processes():
    code = (
        "import sys, cloudpickle\n"
        "from tests.api.test_exceptions import InsufficientFunds, failing\n"
        "error = failing(InsufficientFunds(7)).as_instanceof_cause()\n"
        "sys.stdout.buffer.write(cloudpickle.dumps(error))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=8, check=False)
    assert result.returncode == 0, result.stderr.decode()
    error = pickle.loads(result.stdout)
    assert isinstance(error, InsufficientFunds) and isinstance(error, TaskError)
    assert error.amount == 7
    assert "raise error" in str(error)


ERRORS = [
    RayError("base"),
    TaskError("f", "Traceback (most recent call last):\nValueError: v", ValueError("v"), pid=1),
    GetTimeoutError(),
    GetTimeoutError("Get timed out after 1.0s"),
    RayActorError(),
    ActorDiedError(),
    ActorDiedError("Counter(a1)", "it was killed with kill()."),
    ActorDiedError.killed("Counter(a1)"),
    ActorDiedError.crashed("Counter(a1)", 137, restarts=2),
    ActorDiedError.crashed("Counter(a1)", None),
    ActorDiedError.node_lost("Counter(a1)", "node-7"),
    ActorDiedError.constructor_raised("Counter(a1)", failing(ValueError("bad init"))),
    ActorUnavailableError("Counter(a1)"),
    WorkerCrashedError("f"),
    WorkerCrashedError(),
    ObjectLostError("ab12", "its node died and it has no lineage"),
    ObjectLostError("ab12"),
    OwnerDiedError("ab12"),
    TaskCancelledError("t1"),
    TaskCancelledError(),
    NodeDiedError("node-7"),
    ActorAlreadyExistsError("counter", "ns"),
    ObjectStoreFullError(),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_every_error_pickles_with_its_message_and_fields(error, dumps):
    copy = roundtrip(error, dumps)
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    fields = {k: v for k, v in vars(error).items() if k != "cause"}
    assert {k: v for k, v in vars(copy).items() if k != "cause"} == fields


def test_error_hierarchy():
    assert exc.ActorcoreError is RayError and exc.RayTaskError is TaskError
    assert isinstance(GetTimeoutError(), TimeoutError)
    assert isinstance(ActorAlreadyExistsError("a"), ValueError)
    assert isinstance(OwnerDiedError("x"), ObjectLostError)
    assert isinstance(ActorDiedError(), RayActorError)
    assert isinstance(ActorUnavailableError(), RayActorError)
    for error in ERRORS:
        assert isinstance(error, RayError)


def test_messages_name_what_failed():
    assert str(ActorDiedError()) == "The actor died unexpectedly before finishing this task."
    assert str(ActorDiedError.killed("Counter(a1)")) == (
        "The actor Counter(a1) died: it was killed with kill().")
    assert "exited with code 137 after 2 restart(s)" in str(
        ActorDiedError.crashed("Counter(a1)", 137, restarts=2))
    assert "node-7" in str(ActorDiedError.node_lost("Counter(a1)", "node-7"))
    init = ActorDiedError.constructor_raised("Counter(a1)", failing(ValueError("bad init")))
    assert init.actor_init_failed and "ValueError: bad init" in str(init)
    assert not ActorDiedError.killed("A").actor_init_failed
    assert "Counter(a1)" in str(ActorUnavailableError("Counter(a1)"))
    assert "task f" in str(WorkerCrashedError("f"))
    assert str(ObjectLostError("ab12", "its node died")) == (
        "Failed to retrieve object ab12: its node died.")
    assert "owner" in str(OwnerDiedError("ab12")) and "ab12" in str(OwnerDiedError("ab12"))
    assert "t1" in str(TaskCancelledError("t1"))
    assert "get_if_exists=True" in str(ActorAlreadyExistsError("counter"))
    assert str(ActorDiedError.exited("A")) == "The actor A died: it exited intentionally: exit_actor() was called."


def test_exports():
    assert sorted(exc.__all__) == sorted([
        "ActorAlreadyExistsError", "ActorDiedError", "ActorUnavailableError", "ActorcoreError",
        "GetTimeoutError", "NodeDiedError", "ObjectLostError", "ObjectStoreFullError",
        "OwnerDiedError", "RayActorError", "RayError", "RayTaskError", "TaskCancelledError",
        "TaskError", "WorkerCrashedError",
        # placement groups and scheduling strategies
        "ActorPlacementGroupRemoved", "ActorUnschedulableError", "TaskPlacementGroupRemoved",
        "TaskUnschedulableError",
        # for ending actors and bounding their calls (Ray's names)
        "AsyncioActorExit", "PendingCallsLimitExceeded",
        # runtime envs
        "RuntimeEnvSetupError",
    ])
    for name in exc.__all__:
        assert hasattr(exc, name), name
