"""The examples run as a newcomer runs them, and leave no process behind."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(60)
def test_ping_pong_survives_a_kill_9_of_pong():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ping_pong.py")],
        capture_output=True, text=True, timeout=50, cwd=ROOT, check=False,
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
    leftover = subprocess.run(["pgrep", "-f", "ping_pong.py --pong"], capture_output=True, text=True, check=False)
    assert leftover.stdout == ""


@pytest.mark.timeout(120)
def test_the_readme_services_commands(tmp_path):
    """README "Running services", as written: supervise --detach, the clients, status, reload, kill."""
    import os
    import signal

    from actorcore.testing import WaitTimeout, processes_of, wait_until

    home = tmp_path / "home"
    env = {**os.environ, "ACTORCORE_HOME": str(home)}
    env.pop("ACTORCORE_TOKEN", None)
    pid_file = tmp_path / "supervise.pid"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=90,
                              cwd=ROOT, env=env, check=False)

    started = run("-m", "actorcore", "supervise", "examples/services/services.toml", "--detach",
                  "--pid-file", str(pid_file))
    try:
        assert started.returncode == 0, started.stderr
        assert "services up" in started.stdout
        assert run("examples/services/client.py").stdout.strip() == "count: 1"
        assert run("examples/services/client.py").stdout.strip() == "count: 2"
        kv = run("examples/services/kv_client.py")
        assert kv.stdout.splitlines()[0] == "kv: put 3 keys; keys = ['a', 'b', 'c']; get('a') = 1", kv
        status = run("-m", "actorcore", "supervise", "status")
        assert status.returncode == 0 and "daemon: running" in status.stdout, status
        assert "├─ counter" in status.stdout and "└─ kv" in status.stdout and "ALIVE" in status.stdout, status
        reload = run("-m", "actorcore", "supervise", "reload")
        assert reload.returncode == 0 and "nothing changed" in reload.stdout, reload
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        with contextlib.suppress(WaitTimeout):  # what is left is killed, then reported
            wait_until(lambda: not processes_of(home), 30, "the daemon's cluster to end", interval=0.1)
        left = processes_of(home)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        run("-m", "actorcore", "stop")
    assert not left, f"processes left behind: {left}"
