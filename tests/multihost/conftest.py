"""A real cluster across hosts (network, mount and UTS namespaces on this machine, see
`actorcore.testing_hosts`): the head on host a, nodes on hosts b and c, each started with the
CLI on its own host, as on three machines.

Every node has 2 CPUs and a custom resource of its own ("A", "B", "C"); b and c also have one
"pool" each, so that an actor asking for it lands on b or c and can be restarted on the other.
Drivers run on a host too (`drive`): the test process is on none of them. Whatever a test does,
the network's close kills every process of its hosts and deletes their namespaces.

Skipped, with the reason, where the machine cannot make namespaces (not root, no `ip`,
`unshare` or `nsenter`).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from contextlib import contextmanager

import pytest

from actorcore.testing_hosts import ClusterOnHosts, Network, sweep_leftovers, unavailable_reason

LEASE_TTL = 3
RESOURCES = {"a": {"A": 1}, "b": {"B": 1, "pool": 1}, "c": {"C": 1, "pool": 1}}
_RESULT = "RESULT "

# What every driver program of these tests starts with (after `ray.init`, see ClusterOnHosts.driver).
DRIVER_PRELUDE = f"""
import json, socket
def result(value):
    print({_RESULT!r} + json.dumps(value), flush=True)
@ray.remote
def where():
    return socket.gethostname(), ray.get_runtime_context().get_node_id()
"""


@pytest.fixture(scope="session", autouse=True)
def _hosts_can_be_made():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"multi-host tests need namespaces: {reason}")
    sweep_leftovers()


@contextmanager
def cluster_on_hosts(**start_head):
    """A network of hosts a, b, c and a cluster on them (`start_head`: more arguments of
    `ClusterOnHosts.start_head`); all of it is removed on the way out."""
    with Network() as network:
        hosts = [network.add_host(name) for name in RESOURCES]
        cluster = ClusterOnHosts(network, lease_ttl=LEASE_TTL)
        cluster.start_head(hosts[0], resources=RESOURCES["a"], **start_head)
        for host in hosts[1:]:
            cluster.join(host, resources=RESOURCES[host.name])
        yield cluster


def drive(cluster: ClusterOnHosts, host: str, code: str, timeout: float = 120):
    """Run a driver on `host` whose `code` calls ``result(value)`` once; return that value.

    `code` may use ``ray``, ``ADDRESS``, ``json``, ``socket`` and the task ``where`` (the
    hostname and node id of the worker that runs it)."""
    completed = cluster.driver(cluster.hosts[host], DRIVER_PRELUDE + code, timeout=timeout)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT)]
    assert len(lines) == 1, f"the driver on {host} reported {len(lines)} results:\n{completed}"
    return json.loads(lines[0][len(_RESULT):])


_SERVE = """
import sys, traceback
while line := sys.stdin.readline():
    try:
        exec(json.loads(line), globals())
    except BaseException as error:
        print("FAILED " + json.dumps([type(error).__name__, str(error), traceback.format_exc()]), flush=True)
"""


class DriverFailed(Exception):
    """What a `LiveDriver` ran raised `error_type` with `message`."""

    def __init__(self, error_type: str, message: str, trace: str) -> None:
        super().__init__(f"{error_type}: {message}\n{trace}")
        self.error_type, self.message = error_type, message


class LiveDriver:
    """A driver process that stays connected on a host and runs one piece of code at a time
    (`run`), so that it can own actors and live through what a test does to the cluster."""

    def __init__(self, cluster: ClusterOnHosts, host: str) -> None:
        code = DRIVER_PRELUDE + _SERVE
        self.process = cluster.hosts[host].popen(cluster.driver_command(cluster.hosts[host], code),
                                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def run(self, code: str, timeout: float = 90):
        """Run `code` (it calls ``result(value)`` once) in the driver; return the value. Raise
        DriverFailed if it raised, AssertionError if the driver ends or takes over `timeout` s."""
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        try:
            while True:
                line = self._lines.get(timeout=timeout)
                if line is None:
                    raise AssertionError("the driver ended:\n" + "\n".join(self.output))
                self.output.append(line)
                if line.startswith(_RESULT):
                    return json.loads(line[len(_RESULT):])
                if line.startswith("FAILED "):
                    raise DriverFailed(*json.loads(line[len("FAILED "):]))
        except queue.Empty:
            raise AssertionError(f"the driver ran {code!r} for over {timeout} s:\n" + "\n".join(self.output)) \
                from None

    def close(self) -> None:
        """End the driver (its stdin closed: it shuts down as a script's end does)."""
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def cluster():
    """One cluster shared by a module's tests (tests that do not break it)."""
    with cluster_on_hosts() as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster():
    """A cluster of the test's own (for tests that kill or cut off a host)."""
    with cluster_on_hosts() as cluster:
        yield cluster
