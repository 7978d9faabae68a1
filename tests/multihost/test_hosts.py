"""The hosts of `actorcore.testing_hosts` share nothing but their network, and leave nothing
behind: not when a test fails inside, not when the process that made them is killed."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

import pytest

from actorcore.testing import wait_until
from actorcore.testing_hosts import Network, sweep_leftovers

pytestmark = pytest.mark.timeout(60)


def _machine() -> tuple[str, str]:
    """The machine's own links and namespaces, as `ip` lists them."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return links, namespaces


def test_two_hosts_share_only_their_network():
    before = _machine()
    with Network() as network:
        a, b = network.add_host("a"), network.add_host("b")
        for host, other in ((a, b), (b, a)):
            host.run(["sh", "-c", f"echo {host.name} > /dev/shm/mine && echo {host.name} > /tmp/mine"])
            assert host.run(["cat", "/dev/shm/mine", "/tmp/mine"]).stdout == f"{host.name}\n{host.name}\n"
            assert host.run(["hostname"]).stdout.strip() == host.name
            assert host.run(["ip", "-o", "-4", "addr", "show", "eth0"]).stdout.split()[3] == f"{host.address}/24"
            reached = host.python(f"import socket; socket.create_connection(({other.address!r}, 22), 5)",
                                  check=False)
            assert "Connection refused" in reached.stderr  # a host that answers, with nothing on that port
        if os.path.exists("/etc/machine-id"):  # else a host's identity differs by hostname alone
            assert a.run(["cat", "/etc/machine-id"]).stdout != b.run(["cat", "/etc/machine-id"]).stdout
            with open("/etc/machine-id") as machine_id:
                assert a.run(["cat", "/etc/machine-id"]).stdout != machine_id.read()
        assert not os.path.exists("/dev/shm/mine") and not os.path.exists("/tmp/mine")
        assert a.env["HOME"] == "/tmp/home" and a.path("/tmp/home").is_dir()
        a.disconnect()
        cut = a.python(f"import socket; socket.create_connection(({b.address!r}, 22), 2)", check=False)
        assert cut.returncode != 0 and "Connection refused" not in cut.stderr
        a.reconnect()
        assert _machine()[0] == before[0], "the machine's own links changed"
    assert _machine() == before


@pytest.mark.skipif(not os.path.exists("/etc/machine-id"), reason="this machine has no /etc/machine-id to stand in for")
def test_hosts_can_be_made_clones_of_one_machine():
    with Network() as network:
        a, b = network.add_host("a", machine_id="0" * 32), network.add_host("b", machine_id="0" * 32)
        assert a.run(["cat", "/etc/machine-id"]).stdout == b.run(["cat", "/etc/machine-id"]).stdout == "0" * 32 + "\n"


def _fail_on_a_host(made: dict) -> None:
    with Network() as network:
        made["host"] = host = network.add_host("a")
        made["sleeper"] = sleeper = host.popen(["sleep", "600"])
        wait_until(lambda: sleeper.pid in host.processes(), 10, "the process to run on the host")
        raise RuntimeError("a test fails")


def test_a_failing_test_leaves_no_namespace_and_no_process():
    before, made = _machine(), {}
    with pytest.raises(RuntimeError, match="a test fails"):
        _fail_on_a_host(made)
    host = made["host"]
    assert made["sleeper"].wait(timeout=10) == -signal.SIGKILL
    assert not host.path("/").exists()  # the holder is gone
    assert _machine() == before


PR_SET_CHILD_SUBREAPER = 36


def test_the_namespaces_of_a_killed_run_are_swept():
    # The killed run's orphans are reparented to this process (not to pid 1, which may not reap).
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        _kill_a_run_and_sweep()
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _kill_a_run_and_sweep():
    made = subprocess.Popen(
        [sys.executable, "-c", ("from actorcore.testing_hosts import Network\n"
                                "network = Network()\nhost = network.add_host('a')\n"
                                "print(host.netns, host.pid, flush=True)\nimport time; time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    netns, holder = made.stdout.readline().split()
    made.kill()
    made.wait()
    made.stdout.close()
    assert netns in _machine()[1]
    swept = sweep_leftovers()
    assert netns in swept and netns.replace("-a", "-switch") in swept
    assert netns not in _machine()[1]
    assert os.waitpid(int(holder), 0)[0] == int(holder)  # the killed run's holder ended, reaped here
