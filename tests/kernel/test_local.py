"""The kernel inside one process: mailbox order, ask, lifecycle, stop, death watch."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from actorcore.kernel import (
    Actor,
    ActorStoppedError,
    ActorSystem,
    ActorSystemError,
    AskTimeoutError,
    Terminated,
)
from tests.kernel.peer import TEST_TOKEN

pytestmark = pytest.mark.timeout(30)


class Recorder(Actor):
    def __init__(self, log: list | None = None) -> None:
        self.seen: list = []
        self.log = log if log is not None else []

    async def pre_start(self) -> None:
        self.log.append("pre_start")

    async def post_stop(self) -> None:
        self.log.append("post_stop")

    async def receive(self, message):
        if message == "seen":
            return list(self.seen)
        if message == "fail":
            raise ValueError("failing on purpose")
        if message == "block":
            await asyncio.sleep(3600)
        if message == "stop":
            self.context.stop()
            return "stopping"
        if isinstance(message, tuple) and message[0] == "watch":
            self.context.watch(message[1])
            return None
        if isinstance(message, Terminated):
            self.log.append(message)
            return None
        self.seen.append(message)
        return message


async def test_tells_arrive_in_order_and_ask_returns_receive_value(system):
    ref = system.spawn(Recorder)
    for i in range(10_000):
        ref.tell(i)
    assert await ref.ask("seen") == list(range(10_000))
    assert await ref.ask(("x", 1)) == ("x", 1)


async def test_error_in_ask_goes_back_to_the_caller_and_actor_continues(system):
    ref = system.spawn(Recorder)
    with pytest.raises(ValueError, match="failing on purpose"):
        await ref.ask("fail")
    assert await ref.ask(7) == 7


async def test_ask_timeout_names_actor_and_message_type(system):
    ref = system.spawn(Recorder, name="sleepy")
    started = time.monotonic()
    with pytest.raises(AskTimeoutError, match=r"sleepy.*0\.2 s.*str"):
        await ref.ask("block", timeout=0.2)
    assert 0.15 < time.monotonic() - started < 10
    assert isinstance(AskTimeoutError("x"), TimeoutError)


async def test_ask_on_stopped_actor_raises_at_once(system):
    ref = system.spawn(Recorder, name="gone")
    await system.stop(ref)
    started = time.monotonic()
    with pytest.raises(ActorStoppedError, match="gone"):
        await ref.ask("seen", timeout=10)
    assert time.monotonic() - started < 5  # well before the ask's timeout


async def test_stop_fails_every_pending_ask_at_once(system):
    entered = asyncio.Event()

    class Blocker(Actor):
        async def receive(self, message):
            entered.set()
            await asyncio.sleep(3600)

    ref = system.spawn(Blocker)
    blocked = ref.ask("block", timeout=None)
    queued = [ref.ask(i, timeout=None) for i in range(5)]
    await asyncio.wait_for(entered.wait(), 10)
    system.stop(ref)
    for future in queued:
        with pytest.raises(ActorStoppedError):
            await asyncio.wait_for(future, 10)
    # the message being handled never ends: killing the actor fails its ask too
    system.cell(ref).kill()
    with pytest.raises(ActorStoppedError, match="killed while handling str"):
        await asyncio.wait_for(blocked, 10)


async def test_lifecycle_hooks_run_in_order(system):
    log: list = []
    ref = system.spawn(Recorder, log)
    await ref.ask(1)
    terminated = await system.stop(ref)
    assert log == ["pre_start", "post_stop"]
    assert terminated.reason == "normal"


async def test_actor_stopping_itself(system):
    ref = system.spawn(Recorder)
    watch = system.watch(ref)
    assert await ref.ask("stop") == "stopping"
    assert (await asyncio.wait_for(watch, 10)).reason == "normal"


async def test_failure_in_tell_stops_the_actor_with_the_error(system):
    ref = system.spawn(Recorder)
    watch = system.watch(ref)
    ref.tell("fail")
    terminated = await asyncio.wait_for(watch, 10)
    assert terminated.reason == "failed"
    assert isinstance(terminated.error, ValueError)
    assert terminated.ref == ref


async def test_death_watch_is_idempotent_and_fires_for_already_dead(system):
    log: list = []
    watcher = system.spawn(Recorder, log)
    target = system.spawn(Recorder)
    await watcher.ask(("watch", target))
    await watcher.ask(("watch", target))  # idempotent: one Terminated
    await system.stop(target)
    await watcher.ask("seen")  # Terminated was queued before this ask
    assert [type(x) for x in log if isinstance(x, Terminated)] == [Terminated]
    # watching an actor that is already dead fires at once, with its reason
    late = await asyncio.wait_for(system.watch(target), 10)
    assert late.ref == target and late.reason == "normal"


async def test_spawn_rejects_bad_input(system):
    class NotAsync(Actor):
        def receive(self, message):  # not async
            return message

    with pytest.raises(TypeError, match="async def"):
        system.spawn(NotAsync)
    with pytest.raises(TypeError, match="not a subclass"):
        system.spawn(dict)
    system.spawn(Recorder, name="unique")
    with pytest.raises(ValueError, match="already exists"):
        system.spawn(Recorder, name="unique")


async def test_constructor_failure_stops_the_actor(system):
    class Broken(Actor):
        def __init__(self) -> None:
            raise RuntimeError("bad constructor")

        async def receive(self, message):
            return message

    ref = system.spawn(Broken)
    terminated = await asyncio.wait_for(system.watch(ref), 10)
    assert terminated.reason == "failed" and "bad constructor" in str(terminated.error)


async def test_one_system_per_process(system):
    with pytest.raises(ActorSystemError, match="already running"):
        await ActorSystem.start(token=TEST_TOKEN)


async def test_tell_from_another_thread(system):
    ref = system.spawn(Recorder)
    thread = threading.Thread(target=lambda: [ref.tell(i) for i in range(100)])
    thread.start()
    # the thread's tells were queued on the loop before the join's completion was
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert await ref.ask("seen") == list(range(100))


def test_system_on_its_own_thread():
    system = ActorSystem.start_in_thread(name="threaded", token=TEST_TOKEN)
    try:
        async def scenario():
            ref = system.spawn(Recorder)
            return await ref.ask(42)

        assert system.run(scenario(), timeout=5) == 42
        with pytest.raises(ActorSystemError, match="event loop"):
            system.spawn(Recorder)
    finally:
        system.shutdown_sync()
    with pytest.raises(ActorSystemError):
        ActorSystem.current()


async def test_shutdown_stops_actors_newest_first():
    system = await ActorSystem.start(token=TEST_TOKEN)
    log: list = []

    class Named(Actor):
        def __init__(self, name: str) -> None:
            self.name = name

        async def receive(self, message):
            return None

        async def post_stop(self) -> None:
            log.append(self.name)

    for name in ("a", "b", "c"):
        system.spawn(Named, name)
    await system.shutdown()
    assert log == ["c", "b", "a"]


async def test_deferred_reply_answers_later(system):
    class Later(Actor):
        def __init__(self) -> None:
            self.waiting = []

        async def receive(self, message):
            if message == "wait":
                self.waiting.append(self.context.defer_reply())
                return "ignored"
            for reply in self.waiting:
                reply.send(message)
            self.waiting.clear()
            return "released"

    ref = system.spawn(Later)
    first, second = ref.ask("wait"), ref.ask("wait")
    assert await ref.ask("go") == "released"
    assert (await first, await second) == ("go", "go")
