"""actorcore's logs: quiet by default, collected by capture_logs, and structlog imported only
for an entry that is emitted (a process that logs nothing does not pay for the import)."""

import subprocess
import sys
import textwrap

import pytest

from actorcore._logging import get_logger
from actorcore.testing import capture_logs

pytestmark = pytest.mark.timeout(60)


def _run(program: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True,
                          timeout=50, check=False)


def test_a_process_that_logs_below_the_level_never_imports_structlog():
    result = _run("""
        import sys
        import actorcore.api, supervisor
        from actorcore._logging import get_logger
        from supervisor._log import get_logger as supervisor_logger
        get_logger("actorcore.test").debug("not shown", n=1)
        supervisor_logger().info("not shown either")
        print("structlog" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


def test_an_emitted_entry_reaches_stderr_with_its_fields():
    result = _run("""
        from actorcore._logging import get_logger
        from supervisor._log import get_logger as supervisor_logger
        get_logger("actorcore.test").warning("something to see", n=1)
        supervisor_logger().error("supervisor trouble", child="c1")
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "something to see" in lines[0] and "[actorcore.test]" in lines[0] and "n=1" in lines[0]
    assert "supervisor trouble" in lines[1] and "child='c1'" in lines[1]


def test_capture_logs_collects_every_level_with_its_fields():
    log = get_logger("actorcore.test")
    with capture_logs() as entries:
        log.debug("low", a=1)
        try:
            raise ZeroDivisionError("x")
        except ZeroDivisionError:
            log.exception("failed")
    assert [(e["event"], e["log_level"]) for e in entries] == [("low", "debug"), ("failed", "error")]
    assert entries[0]["a"] == 1 and entries[1]["exc_info"] is True
