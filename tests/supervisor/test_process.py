"""ProcessChild: exit mapping, SIGTERM then SIGKILL, no polling."""

import asyncio
import signal
import sys
import time

import pytest

from supervisor import Child, Exit, ProcessChild, StartInfo, process_spec

from ._procs import IGNORE_TERM, PY, SLEEP

pytestmark = pytest.mark.timeout(30)


async def run(code: str) -> ProcessChild:
    return await ProcessChild.start([*PY, code])


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pass", Exit("normal", code=0)),
        ("import sys; sys.exit(3)", Exit("crashed", code=3)),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", Exit("killed", signal=signal.SIGKILL)),
    ],
)
async def test_exit_mapping(code, expected):
    child = await run(code)
    assert isinstance(child, Child) and child.pid > 0
    assert await asyncio.wait_for(child.wait(), 10) == expected
    assert await child.wait() == expected  # awaitable many times
    assert await child.shutdown(1.0) == expected  # already ended: same exit


async def test_shutdown_sends_sigterm():
    child = await run(SLEEP)
    waiters = [asyncio.ensure_future(child.wait()) for _ in range(3)]
    exit = await asyncio.wait_for(child.shutdown(5.0), 10)
    assert exit.kind == "shutdown" and exit.signal == signal.SIGTERM and not exit.abnormal
    assert [await w for w in waiters] == [exit] * 3


async def test_shutdown_kills_a_child_that_ignores_sigterm():
    child = await ProcessChild.start(
        [*PY, IGNORE_TERM + "import sys\nprint('ready', flush=True)\ntime.sleep(60)\n"],
        stdout=asyncio.subprocess.PIPE,
    )
    assert (await asyncio.wait_for(child.process.stdout.readline(), 10)).strip() == b"ready"
    t0 = time.monotonic()
    exit = await asyncio.wait_for(child.shutdown(0.3), 10)
    elapsed = time.monotonic() - t0
    assert exit.kind == "shutdown" and exit.signal == signal.SIGKILL
    assert "SIGKILL after ignoring SIGTERM for 0.3 s" in str(exit)
    assert elapsed >= 0.3


async def test_brutal_kill_is_immediate():
    child = await run(IGNORE_TERM + "time.sleep(60)\n")
    exit = await asyncio.wait_for(child.shutdown(0), 10)  # SIGTERM ignored: a grace period would hang
    assert exit.signal == signal.SIGKILL and "brutal_kill" in str(exit)


async def test_external_sigkill_is_seen_as_a_kill():
    # How soon it is seen is printed, not asserted (a loaded machine must not fail this test):
    # benchmarks/kernel.py measures it (supervised_exit_detected_ms).
    child = await run(SLEEP)
    waiter = asyncio.ensure_future(child.wait())
    t0 = time.perf_counter()
    child.process.kill()  # not through shutdown(): looks like kill -9 from outside
    exit = await asyncio.wait_for(waiter, 10)
    seen = time.perf_counter() - t0
    print(f"SIGKILL seen after {seen * 1000:.2f} ms")
    assert exit == Exit("killed", signal=signal.SIGKILL) and exit.abnormal


async def test_process_spec_appends_args_and_accepts_argv_function():
    code = "import sys; sys.exit(int(sys.argv[1]) * 10 + int(sys.argv[2]))"
    spec = process_spec("q", lambda info: [*PY, code, str(info.incarnation)])
    child = await spec.start(StartInfo(incarnation=4, args=(3,)))  # argv: ... code 4 3
    assert await asyncio.wait_for(child.wait(), 10) == Exit("crashed", code=43)


def test_process_spec_validates():
    with pytest.raises(ValueError, match="argv is empty"):
        process_spec("p", [])
    with pytest.raises(ValueError, match="restart='sometimes'"):
        process_spec("p", [sys.executable], restart="sometimes")
