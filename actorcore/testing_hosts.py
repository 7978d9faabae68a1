"""Several "hosts" on one Linux machine, for tests and benchmarks of a cluster across machines.

A `Network` is a private switch (a bridge in a network namespace of its own) and the hosts
plugged into it. Each `Host` has

- its own network namespace: a veth link to the switch with the address 10.77.0.<n>/24, and
  its own loopback (so its own abstract Unix socket names);
- its own mount namespace, held by a long-lived holder process: a private tmpfs on /dev/shm
  and on /tmp, HOME = /tmp/home, and its own /etc/machine-id (where the machine has one);
- its own hostname (UTS namespace).

So hosts share nothing but the network they are given, and that network reaches nothing else:
the switch lives in a namespace of its own, not in the machine's, so no address or route of the
machine is touched and no traffic leaves the namespaces made here. Commands run "on a host"
with `nsenter` into the holder's namespaces (`Host.popen`, `Host.run`, `Host.python`). A host
can be cut off from the switch (`Host.disconnect`, the link down) and plugged back in
(`Host.reconnect`), or have every process on it killed (`Host.kill_processes`).

`ClusterOnHosts` runs an actorcore cluster on such hosts with the CLI, as an operator runs one
on several machines: `actorcore start --head --node-ip-address <host's address>` on one,
`actorcore start --address <head>:<port> --credentials <a copy of the head's file>` on the others.
`ClusterOnHosts.credentials_for` is the one place that says what a joining node or a driver on
another host is given and how.

Cleanup: `Network.close` kills every process in the namespaces it made (found by namespace, not
by name) and deletes the namespaces, which frees their links, mounts and shared memory. Every
namespace is named ``acmh-<pid of the creating process>-<n>-<role>``, so `sweep_leftovers`
can remove what a process that died without cleaning up left behind.

Needs root and the `ip` (iproute2), `unshare` and `nsenter` (util-linux) commands;
`unavailable_reason` says why a machine cannot make hosts.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ClusterOnHosts",
    "Host",
    "Network",
    "sweep_leftovers",
    "unavailable_reason",
]

PREFIX = "acmh"
SUBNET = "10.77.0"  # the hosts are 10.77.0.1, .2, ...; only inside the namespaces made here
HOST_HOME = "/tmp/home"  # HOME of every host (on its private /tmp)
_COMMANDS = ("ip", "unshare", "nsenter", "mount", "hostname")
_counter = itertools.count()

# The holder of a host's mount and UTS namespaces: it mounts the host's private filesystems,
# names the host, says "ready", then waits until the harness closes its stdin (or dies). What
# the host must still run from the machine's /tmp (this Python, its venv, the working
# directory: `_kept_in_tmp`) is bound back into the host's private /tmp.
_HOLDER = f"""
set -e
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
if [ -n "$ACMH_KEEP" ]; then
    mkdir /dev/shm/.acmh-machine-tmp
    mount --bind /tmp /dev/shm/.acmh-machine-tmp
fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
for name in $ACMH_KEEP; do
    mkdir -p "/tmp/$name"
    mount --bind "/dev/shm/.acmh-machine-tmp/$name" "/tmp/$name"
done
mkdir -m 700 {HOST_HOME}
if [ -e /etc/machine-id ]; then
    printf '%s\\n' "$ACMH_MACHINE_ID" > /tmp/.machine-id
    mount --bind /tmp/.machine-id /etc/machine-id
fi
hostname "$ACMH_HOSTNAME"
echo ready
read -r _ || true
"""


def _kept_in_tmp() -> list[str]:
    """The entries of the machine's /tmp that a host needs (this interpreter, its venv, the
    working directory, the import path): a checkout under /tmp must stay visible on hosts."""
    paths = [sys.prefix, os.path.dirname(os.path.realpath(sys.executable)), os.getcwd(), *sys.path]
    kept = set()
    for path in paths:
        parts = os.path.realpath(path or ".").split(os.sep)
        if len(parts) > 2 and parts[1] == "tmp" and not any(c.isspace() for c in parts[2]):
            kept.add(parts[2])
    return sorted(kept)


def unavailable_reason() -> str | None:
    """Why this machine cannot make hosts (not root, a command missing, namespaces refused);
    None if it can."""
    if sys.platform != "linux":
        return f"network and mount namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "making network and mount namespaces needs root"
    missing = [name for name in _COMMANDS if shutil.which(name) is None]
    if missing:
        return f"missing command(s) {', '.join(missing)} (packages iproute2, util-linux, mount, hostname)"
    probe = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return f"this machine refuses new namespaces: {probe.stderr.strip() or probe.returncode}"
    return None


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _pids_in(netns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split()]


def _kill_namespace(netns: str, timeout: float = 10.0) -> None:
    """SIGKILL every process in `netns` until none is left, then delete it."""
    deadline = time.monotonic() + timeout
    while pids := _pids_in(netns):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of network namespace {netns} survive SIGKILL")
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def sweep_leftovers() -> list[str]:
    """Delete the namespaces (and kill their processes) that a process, now gone, made here
    and did not clean up; return their names."""
    swept = []
    for netns in _namespaces():
        parts = netns.split("-")
        if len(parts) < 4 or parts[0] != PREFIX or not parts[1].isdigit():
            continue
        creator = int(parts[1])
        if creator != os.getpid() and not Path(f"/proc/{creator}").exists():
            _kill_namespace(netns)
            swept.append(netns)
    return swept


@dataclass
class Host:
    """One host: its name (also its hostname), address, network namespace and holder process."""

    name: str
    address: str
    netns: str
    link: str  # the switch's end of the host's link
    switch: str  # the switch's network namespace
    holder: subprocess.Popen
    env: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The holder's pid: commands on this host enter its namespaces."""
        return self.holder.pid

    def command(self, argv: list[str], cwd: str | os.PathLike | None = None) -> list[str]:
        """`argv` as a command line that runs it on this host (in `cwd`, default this process's)."""
        return ["nsenter", "--target", str(self.pid), "--mount", "--uts", "--net",
                f"--wd={cwd or os.getcwd()}", "--", *argv]

    def popen(self, argv: list[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None,
              **kwargs) -> subprocess.Popen:
        """Start `argv` on this host with the host's environment (plus `env`); `kwargs` go to Popen."""
        return subprocess.Popen(self.command(argv, cwd), env={**self.env, **(env or {})}, **kwargs)

    def run(self, argv: list[str], *, timeout: float = 90, check: bool = True, env: dict | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run `argv` on this host to completion (text output captured, `input` on stdin);
        raise AssertionError if it fails and `check`, TimeoutExpired past `timeout` seconds."""
        result = subprocess.run(self.command(argv), env={**self.env, **(env or {})}, capture_output=True,
                                text=True, timeout=timeout, check=False, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"on {self.name}: {' '.join(argv)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def python(self, code: str, *, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
        """Run Python `code` on this host with this interpreter (see `run` for `timeout`, `check`)."""
        return self.run([sys.executable, "-c", code], timeout=timeout, check=check)

    def path(self, path: str) -> Path:
        """Where this process sees the file at `path` of this host (its private /tmp included)."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def processes(self) -> list[int]:
        """The pids of the processes on this host, its holder excepted."""
        return [pid for pid in _pids_in(self.netns) if pid != self.pid]

    def kill_processes(self, *, sparing: tuple[int, ...] = ()) -> list[int]:
        """SIGKILL every process on this host (but its holder and `sparing`), as a crash would;
        return their pids."""
        killed = [pid for pid in self.processes() if pid not in sparing]
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return killed

    def disconnect(self) -> None:
        """Cut this host off the network (its link to the switch goes down): a partition."""
        _ip("-n", self.switch, "link", "set", self.link, "down")

    def reconnect(self) -> None:
        """Plug this host back into the network (the partition heals)."""
        _ip("-n", self.switch, "link", "set", self.link, "up")


class Network:
    """A switch and the hosts on it; `close` (or leaving the `with` block) removes them all."""

    def __init__(self) -> None:
        self.prefix = f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        self.switch = f"{self.prefix}-switch"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "switch", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "switch", "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def add_host(self, name: str, env: dict | None = None, machine_id: str | None = None,
                 hostname: str | None = None) -> Host:
        """A new host called `name`, at the next free address; `env`: the environment of what
        runs on it (default this process's, without ACTORCORE_*; HOME, TMPDIR and
        ACTORCORE_HOME are the host's own); `machine_id`: its /etc/machine-id (default a new
        random one) and `hostname` (default `name`): give two hosts the same to make clones."""
        if name in self.hosts or not name.isidentifier():
            raise ValueError(f"host name {name!r}: must be a new identifier")
        address = f"{SUBNET}.{len(self.hosts) + 1}"
        netns = f"{self.prefix}-{name}"
        link = f"to-{name}"[:15]
        self._add_namespace(netns)
        _ip("-n", self.switch, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("-n", self.switch, "link", "set", link, "master", "switch", "up")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        base = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith("ACTORCORE_")}
        holder = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", _HOLDER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**base, "ACMH_HOSTNAME": hostname or name, "ACMH_MACHINE_ID": machine_id or uuid.uuid4().hex,
                 "ACMH_KEEP": " ".join(_kept_in_tmp())},
        )
        ready = holder.stdout.readline().strip()
        if ready != "ready":
            holder.kill()
            _, err = holder.communicate()
            raise RuntimeError(f"host {name}: its namespaces could not be set up: {err.strip()}")
        host_env = {**base, "HOME": HOST_HOME, "TMPDIR": "/tmp", "ACTORCORE_HOME": f"{HOST_HOME}/.actorcore"}
        host = Host(name, address, netns, link, self.switch, holder, host_env)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Kill every process on every host, delete the namespaces (their links, mounts and
        shared memory go with them)."""
        for netns in reversed(self._made):
            _kill_namespace(netns)
        self._made.clear()
        for host in self.hosts.values():
            host.holder.wait()
            for stream in (host.holder.stdin, host.holder.stdout, host.holder.stderr):
                stream.close()


class ClusterOnHosts:
    """An actorcore cluster on the hosts of `network`, started with the CLI on each host;
    `lease_ttl`: the head's --lease-ttl (default: the CLI's).

    `start_head` then `join` (each with the node's CPUs and custom resources); `driver` runs a
    driver program on a host; `node_records` reads a host's ``nodes/*.json``. The network's
    `close` stops it all (it kills every process of every host).
    """

    PORT = 2379

    def __init__(self, network: Network, lease_ttl: float | None = None) -> None:
        self.network = network
        self.hosts = network.hosts  # name -> Host
        self.lease_ttl = lease_ttl
        self.head: Host | None = None
        self.nodes: dict[str, dict] = {}  # host name -> the record of the node started there

    @property
    def address(self) -> str:
        """The cluster's address (its etcd on the head host)."""
        if self.head is None:
            raise RuntimeError("the cluster has no head yet (start_head first)")
        return f"{self.head.address}:{self.PORT}"

    def _start(self, host: Host, args: list[str], num_cpus: float, resources: dict) -> dict:
        host.run([sys.executable, "-m", "actorcore", "start", *args, "--num-cpus", str(num_cpus),
                  "--resources", json.dumps(resources)])
        (record,) = self.node_records(host)[-1:]
        self.nodes[host.name] = record
        return record

    def start_head(self, host: Host, *, num_cpus: float = 2, resources: dict | None = None,
                   object_replicas: int | None = None) -> dict:
        """Start the head (and its etcd) on `host`, listening on the host's address; return its
        node record. `num_cpus`, `resources`: the node's; `object_replicas`: the cluster's."""
        self.head = host
        args = ["--head", "--node-ip-address", host.address, "--port", str(self.PORT)]
        if self.lease_ttl is not None:
            args += ["--lease-ttl", f"{self.lease_ttl:g}"]
        if object_replicas is not None:
            args += ["--object-replicas", str(object_replicas)]
        return self._start(host, args, num_cpus, resources or {})

    def credentials_for(self, host: Host) -> list[str]:
        """Give `host` what a node or a driver there needs to join the cluster; return the
        arguments `actorcore start --address` takes for it.

        That is a copy of the head's credentials file (mode 0600), as an operator would copy
        it to another machine, passed with --credentials. The node that joins with it keeps
        what a driver on its host needs in the host's ACTORCORE_HOME.
        """
        if host is self.head:
            return []
        credentials = self.head.path(f"{HOST_HOME}/.actorcore/credentials.json").read_bytes()
        target = host.path(f"{HOST_HOME}/cluster-credentials.json")
        target.write_bytes(credentials)
        target.chmod(0o600)
        return ["--credentials", f"{HOST_HOME}/cluster-credentials.json"]

    def join(self, host: Host, *, num_cpus: float = 2, resources: dict | None = None) -> dict:
        """Start a node on `host` joined to the cluster (its address found by the CLI from the
        route to the head); return its node record. `num_cpus`, `resources`: the node's."""
        args = ["--address", self.address, *self.credentials_for(host)]
        return self._start(host, args, num_cpus, resources or {})

    def node_records(self, host: Host) -> list[dict]:
        """The records of the nodes started on `host` (``nodes/*.json``), oldest first."""
        folder = host.path(f"{HOST_HOME}/.actorcore/nodes")
        records = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
        return sorted(records, key=lambda record: record["started"])

    def driver_command(self, host: Host, code: str) -> list[str]:
        """The command line of a driver on `host` that runs `code` after ``import actorcore as
        ray`` and ``ray.init(address=<the cluster>)`` (as ``ray`` and ``ADDRESS``)."""
        self.credentials_for(host)
        prelude = (f"import actorcore as ray\nADDRESS = {self.address!r}\n"
                   "ray.init(address=ADDRESS, log_to_driver=False)\n")
        return [sys.executable, "-c", prelude + code]

    def driver(self, host: Host, code: str, *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run a driver on `host` (see `driver_command` for `code`) to completion; raise
        AssertionError if it fails and `check`, TimeoutExpired past `timeout` seconds."""
        return host.run(self.driver_command(host, code), timeout=timeout, check=check)
