"""actorcore.testing's bounded waits: `wait_until` and `async_wait_until`."""

from __future__ import annotations

import pytest

from actorcore.testing import WaitTimeout, async_wait_until, wait_until


class Countdown:
    """A predicate that is false until its ``n``-th call, which returns ``value``."""

    def __init__(self, n: int, value: object = "ready") -> None:
        self.n, self.value, self.calls = n, value, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value if self.calls >= self.n else 0


def test_it_returns_the_predicates_first_truthy_value():
    predicate = Countdown(3, value={"pid": 7})
    assert wait_until(predicate, 30, "the third call", interval=0) == {"pid": 7}
    assert predicate.calls == 3


def test_a_predicate_already_true_is_called_once():
    predicate = Countdown(1)
    assert wait_until(predicate, 30, "the first call") == "ready"
    assert predicate.calls == 1


def test_on_timeout_it_names_what_was_awaited_and_the_last_value():
    with pytest.raises(WaitTimeout) as raised:
        wait_until(list, 0, "the list to fill", details=lambda: "the log says: nothing")
    message = str(raised.value)
    assert message.startswith("timed out after 0 s waiting for the list to fill (last value: [])")
    assert message.endswith("\nthe log says: nothing")


def test_the_timeout_fails_a_test_and_is_a_timeout_error():
    assert issubclass(WaitTimeout, AssertionError) and issubclass(WaitTimeout, TimeoutError)


def test_it_calls_the_predicate_once_more_at_the_deadline():
    predicate = Countdown(2)
    assert wait_until(predicate, 0.01, "a second call", interval=1) == "ready"
    assert predicate.calls == 2


def test_exceptions_in_retry_on_count_as_false_and_are_chained_on_timeout():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise LookupError("not yet")
        return "found"

    assert wait_until(flaky, 30, "the lookup", interval=0, retry_on=(LookupError,)) == "found"

    def missing():
        raise LookupError("never")

    with pytest.raises(WaitTimeout) as raised:
        wait_until(missing, 0, "the lookup", retry_on=(LookupError,))
    assert "last error: LookupError('never')" in str(raised.value)
    assert isinstance(raised.value.__cause__, LookupError)


def test_other_exceptions_propagate_at_once():
    predicate = Countdown(5)

    def broken():
        predicate()
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        wait_until(broken, 30, "anything", retry_on=(LookupError,))
    assert predicate.calls == 1


async def test_async_wait_until_awaits_a_coroutine_predicate():
    predicate = Countdown(3, value=42)

    async def check():
        return predicate()

    assert await async_wait_until(check, 30, "the third call", interval=0) == 42
    assert predicate.calls == 3


async def test_async_wait_until_takes_a_plain_predicate_and_times_out_the_same_way():
    assert await async_wait_until(Countdown(2), 30, "the second call", interval=0) == "ready"
    with pytest.raises(WaitTimeout, match=r"waiting for the flag \(last value: False\)"):
        await async_wait_until(lambda: False, 0, "the flag")
