"""The CLI's long waits show their progress on a terminal only: ``actorcore start`` while the
node starts and registers, ``actorcore stop`` while the nodes stop (a count), run on a real
pseudo-terminal; on a pipe the same commands print only their own lines."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pytest

from actorcore.gcs.etcd_server import _free_port

pytestmark = pytest.mark.timeout(300)


def _run(env: dict, *args: str, terminal: bool) -> str:
    """Run `actorcore ARGS`, its stderr a pseudo-terminal or a pipe; what it wrote there."""
    command = [sys.executable, "-m", "actorcore", *args]
    if not terminal:
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # rows, columns
    try:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=follower)
        os.close(follower)
        chunks = []
        while True:  # read as it comes (a full terminal buffer would block the command)
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunks.append(os.read(leader, 65536))
                except OSError:  # every writer has closed the terminal
                    break
            elif process.poll() is not None:
                break
        assert process.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(leader)


def test_start_and_stop_show_progress_on_a_terminal_only():
    home = Path(tempfile.mkdtemp(prefix="actorcore-progress-"))
    env = {**os.environ, "ACTORCORE_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("ACTORCORE_TOKEN", None)
    start = ["start", "--head", "--port", str(_free_port()), "--num-cpus", "1", "--object-store-memory",
             str(1 << 27)]
    try:
        quiet = _run(env, *start, terminal=False)
        assert "waiting for the node" not in quiet
        shown = _run(env, "stop", terminal=True)
        assert "actorcore stop: stopping the head nodes" in shown and "/1" in shown, shown
        shown = _run(env, *start, terminal=True)
        assert "actorcore start: waiting for the node to start and register" in shown, shown
        quiet = _run(env, "stop", terminal=False)
        assert "stopping the" not in quiet
    finally:
        subprocess.run([sys.executable, "-m", "actorcore", "stop", "--force"], env=env, capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(home, ignore_errors=True)
