"""The public API of the supervisor package is pinned here."""

import subprocess
import sys

import supervisor

EXPECTED = {
    "CHILD_TYPES", "EVENT_KINDS", "EXIT_KINDS", "RESTART_TYPES", "STRATEGIES",
    "MONOTONIC", "Backoff", "Child", "ChildInfo", "ChildNotFoundError", "ChildSpec",
    "ChildStartError", "ChildState", "ChildType", "Clock", "EventKind", "Exit", "ExitKind",
    "MonotonicClock", "ProcessChild",
    "RestartIntensity", "RestartType", "ShutdownPolicy", "StartFn", "StartInfo", "Strategy",
    "Supervisor", "SupervisorError", "SupervisorEvent", "SupervisorStoppedError",
    "process_spec", "supervisor_spec",
}


def test_all_is_pinned():
    assert set(supervisor.__all__) == EXPECTED
    for name in supervisor.__all__:
        assert hasattr(supervisor, name), name


def test_does_not_import_actorcore():
    code = "import sys, supervisor, supervisor.testing; print([m for m in sys.modules if m.startswith('actorcore')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_quiet_by_default():
    code = (
        "import asyncio, supervisor\n"
        "from supervisor.testing import EventRecorder, FakeStarter\n"
        "async def main():\n"
        "    s, rec = FakeStarter('a'), EventRecorder()\n"
        "    async with supervisor.Supervisor([s.spec()], on_event=rec) as sup:\n"
        "        s.current.crash()\n"
        "        await rec.wait_for('child_started', 'a', count=2)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout == "" and out.stderr == ""
