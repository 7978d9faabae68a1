"""The examples run as a newcomer runs them, and leave no process behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(60)
def test_ping_pong_survives_a_kill_9_of_pong():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ping_pong.py")],
        capture_output=True, text=True, timeout=50, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    pongs = [int(line.split()[3]) for line in lines if line.startswith("ping: got pong")]
    assert pongs == list(range(1, 11))
    assert any("killing pong's process" in line for line in lines)
    assert any("pong died (peer_lost)" in line for line in lines)
    assert lines[-1] == "done: 10 rounds, pong restarted 1 time(s) by its supervisor"
    pids = {line.split()[-1] for line in lines if line.startswith("ping: got pong")}
    assert len(pids) == 2, "pong should have run in two processes: before and after the kill"
    leftover = subprocess.run(["pgrep", "-f", "ping_pong.py --pong"], capture_output=True, text=True)
    assert leftover.stdout == ""
