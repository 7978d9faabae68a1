"""`list_logs` and `get_log`, Ray's log API (`ray.util.state.list_logs/get_log`), answered by
the nodes' LogServices (docs/architecture.md, "Logs").

A driver (after `init()`) asks through its own actor system; without one (``actorcore logs``)
a `LogConnection` joins the cluster for the call: it reads the node and actor records from
the cluster's etcd and starts a small actor system of its own with the cluster token, as
``actorcore status`` reads etcd. An actor's logs are its worker's: its record in etcd names its
node and pid. `get_log(follow=True)` reads on from where it stopped every `_interval` seconds
until the caller stops iterating.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

from ..protocol import GetActorRecord, ListLogFiles, ReadLog

__all__ = ["DEFAULT_RPC_TIMEOUT", "LogConnection", "LogError", "get_log", "list_logs"]

DEFAULT_RPC_TIMEOUT = 30
DEFAULT_INTERVAL = 0.5
_CHUNK = 1 << 20


class LogError(RuntimeError):
    """A log could not be found or read (the message says which and why)."""


class LogConnection:
    """What a log query reaches the cluster through: an actor system, the live nodes' records,
    and the actor records. `open` uses the driver's (after `init()`) or joins the cluster at
    `address` (default: the one started on this machine) for the call; `close` undoes that."""

    def __init__(self, system, nodes: list[dict], actor_record, actor_id_by_name, owned: bool) -> None:
        self.system = system
        self.nodes = nodes
        self._actor_record = actor_record
        self._actor_id_by_name = actor_id_by_name
        self._owned = owned

    @classmethod
    def open(cls, address: str | None = None) -> LogConnection:
        from .. import runtime

        core = runtime.current() if address is None else None
        if core is not None:
            return cls._of_driver(core)
        return cls._joined(address)

    @classmethod
    def _of_driver(cls, core) -> LogConnection:
        async def actor_record(actor_id: str) -> dict | None:
            text = await core.gcs.ask(GetActorRecord(actor_id), timeout=DEFAULT_RPC_TIMEOUT)
            return json.loads(text) if isinstance(text, (str, bytes)) else text

        async def actor_id_by_name(name: str, namespace: str | None) -> str | None:
            import actorcore

            try:
                handle = await asyncio.to_thread(actorcore.get_actor, name, namespace)
            except ValueError:
                return None
            return handle._actorcore_actor_id

        nodes = list(core.cluster.view.values())
        return cls(core.system, nodes, actor_record, actor_id_by_name, owned=False)

    @classmethod
    def _joined(cls, address: str | None) -> LogConnection:
        from .. import cluster_files as files
        from ..gcs.schema import key
        from ..gcs.sealed import SealedEtcd
        from ..kernel import ActorSystem

        address = address or (files.read_cluster_info() or {}).get("address")
        if not address:
            raise ConnectionError("no cluster to ask: pass an address (the cluster's etcd, HOST:PORT), or start "
                                  "one on this machine with `actorcore start --head`")
        cluster, auth = files.cluster_at(address)
        token = files.read_token()

        async def read(*parts: str, prefix: bool = False):
            client = await SealedEtcd.connect(address, secret=token, timeout=10, **({"auth": auth} if auth else {}))
            try:
                if prefix:
                    return await client.get_prefix(key(cluster, *parts))
                return await client.get(key(cluster, *parts))
            finally:
                await client.close()

        nodes = [json.loads(value) for _, value in asyncio.run(read("nodes", "", prefix=True))]
        if not nodes:
            raise ConnectionError(f"the actorcore cluster at {address} has no live node")
        credentials = files.credentials_at(address)
        system = ActorSystem.start_in_thread(name="logs", token=token, tcp=f"{_local_ip(nodes[0]['address'])}:0",
                                             tls=credentials.tls if credentials else None)

        async def actor_record(actor_id: str) -> dict | None:
            value = await read("actors", actor_id)
            return json.loads(value) if value else None

        async def actor_id_by_name(name: str, namespace: str | None) -> str | None:
            if namespace is not None:
                value = await read("named", namespace, name)
                return value.decode() if value else None
            found = [value for named, value in await read("named", "", prefix=True) if named.endswith("/" + name)]
            if len(found) > 1:
                raise LogError(f"actors named {name!r} live in {len(found)} namespaces: pass the namespace")
            return found[0].decode() if found else None

        return cls(system, nodes, actor_record, actor_id_by_name, owned=True)

    def close(self) -> None:
        if self._owned:
            self.system.shutdown_sync()

    def __enter__(self) -> LogConnection:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- the questions ---------------------------------------------------------------------

    def run(self, coroutine, timeout: float) -> Any:
        return self.system.run(coroutine, timeout=timeout)

    def ask(self, node: dict, message, timeout: float) -> Any:
        """Ask the LogService of `node` (from outside the system's loop)."""
        ref = self.service(node)

        async def ask() -> Any:
            return await ref.ask(message, timeout=timeout)

        return self.run(ask(), timeout + 5)

    def node(self, node_id: str | None = None, node_ip: str | None = None) -> dict:
        """The record of the node `node_id` (a unique prefix will do) or at `node_ip`; the head's by default."""
        if node_id:
            found = [n for n in self.nodes if n["node_id"].startswith(node_id)]
        elif node_ip:
            found = [n for n in self.nodes if n.get("address") == node_ip]
        else:
            found = [n for n in self.nodes if n.get("head")] or self.nodes[:1]
        if len(found) != 1:
            what = f"node id {node_id!r}" if node_id else f"node ip {node_ip!r}"
            known = ", ".join(n["node_id"] for n in self.nodes)
            raise LogError(f"{what} names {'no' if not found else 'more than one'} live node; the live nodes: {known}")
        return found[0]

    def service(self, node: dict):
        uri = node.get("uris", {}).get("logs")
        if not uri:
            raise LogError(f"node {node['node_id']} has no log service (it runs an older actorcore)")
        return self.system.ref_from_uri(uri)

    def list_files(self, node: dict, glob: str, timeout: float) -> list[dict]:
        return self.ask(node, ListLogFiles(glob), timeout)["files"]

    def read(self, node: dict, request: ReadLog, timeout: float) -> dict:
        answer = self.ask(node, request, timeout)
        if "error" in answer:
            raise LogError(answer["error"])
        return answer

    def actor(self, actor_id: str | None, name: str | None, namespace: str | None, timeout: float) -> dict:
        """The etcd record of the actor `actor_id` (or named `name`); LogError if there is none."""
        if actor_id is None:
            actor_id = self.run(self._actor_id_by_name(name, namespace), timeout)
            if actor_id is None:
                raise LogError(f"no actor named {name!r}" + (f" in namespace {namespace!r}" if namespace else ""))
        record = self.run(self._actor_record(actor_id), timeout)
        if not record:
            raise LogError(f"no actor with id {actor_id!r} in the cluster (kill() removes an actor's record; "
                           "its worker's files stay: `actorcore logs worker --pid PID`)")
        if not record.get("pid") or not record.get("node_id"):
            raise LogError(f"actor {actor_id} has not started on a worker yet (state {record.get('state')})")
        return record


def _local_ip(peer: str) -> str:
    """The IP of this machine that routes to `peer` (no packet is sent)."""
    with socket.socket(socket.AF_INET6 if ":" in peer else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((peer.strip("[]"), 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _group(name: str) -> str:
    if name.startswith("worker-"):
        return "worker_err" if ".err" in name else "worker_out"
    if name.startswith("node-"):
        return "node"
    return "other"


def list_logs(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
              glob_filter: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT) -> dict[str, list[str]]:
    """The log files of one node (the head unless `node_id` or `node_ip` names another) whose names
    match `glob_filter`, by group (``worker_out``, ``worker_err``, ``node``), as Ray's `list_logs`."""
    with LogConnection.open(address) as connection:
        files = connection.list_files(connection.node(node_id, node_ip), glob_filter or "*", timeout)
    groups: dict[str, list[str]] = {}
    for entry in files:
        groups.setdefault(_group(entry["name"]), []).append(entry["name"])
    return groups


def get_log(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
            filename: str | None = None, actor_id: str | None = None, task_id: str | None = None,
            pid: int | None = None, follow: bool = False, tail: int = -1, timeout: int = DEFAULT_RPC_TIMEOUT,
            suffix: str = "out", encoding: str | None = "utf-8", errors: str | None = "strict",
            _interval: float | None = None, *, worker_id: str | None = None, actor_name: str | None = None,
            namespace: str | None = None, _connection: LogConnection | None = None) -> Iterator[str]:
    """The text of one log file, in chunks, as Ray's `get_log`: the file `filename` of a node, or
    the stdout (`suffix` "out") or stderr ("err") of an actor (`actor_id` or `actor_name`), or of
    a worker (`pid` or `worker_id`) of a node. `tail` >= 0: only its last lines. `follow`: then
    wait for more, until the caller stops iterating."""
    if task_id is not None:
        raise LogError("get_log(task_id=...) is not supported: use the task's worker (list_tasks gives its "
                       "node_id and worker_pid) or its actor")
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    if not isinstance(tail, int) or isinstance(tail, bool):
        raise ValueError(f"tail must be an int (-1: the whole file), got {tail!r}")
    if sum(x is not None for x in (filename, actor_id, actor_name, pid, worker_id)) != 1:
        raise ValueError("name exactly one of filename, actor_id, actor_name, pid and worker_id")
    stream = "stdout" if suffix == "out" else "stderr"
    interval = DEFAULT_INTERVAL if _interval is None else _interval
    if _connection is not None:
        return _chunks(_connection, node_id, node_ip, filename, actor_id, actor_name, namespace, pid, worker_id,
                       stream, follow, tail, timeout, encoding or "utf-8", errors or "strict", interval)
    return _opened(address, node_id, node_ip, filename, actor_id, actor_name, namespace, pid, worker_id,
                   stream, follow, tail, timeout, encoding or "utf-8", errors or "strict", interval)


def _opened(address, *query) -> Iterator[str]:
    with LogConnection.open(address) as connection:
        yield from _chunks(connection, *query)


def _chunks(connection, node_id, node_ip, filename, actor_id, actor_name, namespace, pid, worker_id, stream,
            follow, tail, timeout, encoding, errors, interval) -> Iterator[str]:
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
    if actor_id is not None or actor_name is not None:
        actor = connection.actor(actor_id, actor_name, namespace, timeout)
        node_id, node_ip, pid = actor["node_id"], None, int(actor["pid"])
    node = connection.node(node_id, node_ip)
    request = ReadLog(name=filename, pid=pid, worker_id=worker_id, stream=stream, max_bytes=_CHUNK)
    answer = connection.read(node, _with(request, tail=tail if tail >= 0 else -1, offset=0), timeout)
    name = answer["name"]
    while True:
        if answer["data"]:
            yield decoder.decode(answer["data"])
        offset = answer["offset"]
        # read on in the same file (a rotation since is seen by the node: it reads the new file from its start)
        following = _with(request, name=name, pid=None, worker_id=None, tail=-1, file_id=answer["file_id"])
        if offset < answer["size"]:  # more than one answer holds
            answer = connection.read(node, _with(following, offset=offset), timeout)
            continue
        if not follow:
            break
        time.sleep(interval)
        answer = connection.read(node, _with(following, offset=offset), timeout)
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


def _with(request: ReadLog, **changes) -> ReadLog:
    from dataclasses import replace

    return replace(request, **changes)
