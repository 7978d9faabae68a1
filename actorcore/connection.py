"""What ``init()`` connects a driver to: a local cluster it starts, or a running cluster.

- `LocalCluster` (``init()`` with no address) starts a throwaway etcd, a node process (with
  the node launcher, `node_launcher`) and the driver's actor system, and stops them in
  reverse order.
- `ClusterConnection` (``init(address="auto" | "HOST:PORT")``) joins a cluster started with
  ``actorcore start``: it reads the live nodes from etcd, attaches to a node on this machine
  (the head if it runs here) and starts the driver's actor system; stopping it stops only that.

Both give the driver's CoreWorker what it needs: the actor `system`, the node's `endpoints`
(`NodeEndpoints`), the cluster's `view` and `object_replicas`, and the `log_sink` that
prints the output of every node's workers (clusters; a local node is told its sink at start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from . import exceptions as exc
from .cluster_files import new_token
from .kernel import Actor, ActorRef, ActorSystem
from .node_config import NodeConfig, NodeEndpoints
from .node_launcher import NodeProcess, NodeStartError, launch
from .objects.shm import use_cluster_secret
from .progress_bars import board as progress_board
from .protocol import LogLines, Shutdown

__all__ = ["ClusterConnection", "LocalCluster", "LogSink"]


class LogSink(Actor):
    """Prints worker output on the driver's terminal, prefixed with the worker's pid as Ray does;
    progress bars' lines go to their bars (`actorcore.progress_bars`)."""

    async def receive(self, message):
        if isinstance(message, LogLines):
            target = sys.stdout if message.stream == "stdout" else sys.stderr
            lines = progress_board().take(message.lines)
            if not lines:
                return
            with progress_board().printing(target):
                target.write("".join(f"(pid={message.pid}) {text}\n" for text in lines))
                target.flush()


class ClusterConnection:
    """A driver's link to a cluster started with `actorcore start` (nothing to stop but itself)."""

    def __init__(self) -> None:
        self.system: ActorSystem | None = None
        self.endpoints: NodeEndpoints | None = None
        self.view: dict[str, dict] | None = None  # node id -> its record in etcd
        self.object_replicas = 1
        self.log_sink: ActorRef | None = None
        self.dashboard_url: str | None = None  # the head's web dashboard, if it serves one

    def start(self, address: str, log_to_driver: bool) -> None:
        """Attach to a node on this machine of the cluster whose etcd is at `address` ("auto":
        the cluster started on this machine). Raise ConnectionError if there is none."""
        import asyncio

        from . import cluster_files
        from .kernel import address as kernel_address

        info = cluster_files.read_cluster_info() or {}
        if address == "auto":
            if not info.get("address"):
                raise ConnectionError(
                    "init(address='auto'): no actorcore cluster was started on this machine "
                    f"(no {cluster_files.home() / 'cluster.json'}); start one with `actorcore start --head`, "
                    "or pass address='HOST:PORT'"
                )
            address = info["address"]
        cluster, auth = cluster_files.cluster_at(address)
        token = cluster_files.read_token()
        nodes, config = asyncio.run(_read_cluster(address, cluster, auth, token))
        if not nodes:
            raise ConnectionError(f"the actorcore cluster at {address} has no live node; start one with "
                                  "`actorcore start --head` (or `--address` to join)")
        self.dashboard_url = next((n["dashboard_url"] for n in nodes if n.get("dashboard_url")), None)
        here = [n for n in nodes if _runs_here(n)]
        if not here:
            raise ConnectionError(
                f"no node of the cluster at {address} runs on this host (a driver uses a node of its own "
                "host, one whose Unix socket it can see: same machine, same network namespace). To run a "
                "program on the cluster from here, submit it as a job: `actorcore job submit --address "
                f"{self.dashboard_url or 'http://HEAD:8265'} --working-dir . -- python my_program.py`; or "
                f"start a node here with `actorcore start --address {address}` and call init() again"
            )
        node = min(here, key=lambda n: (not n.get("head"), n.get("start_time", 0)))
        kernel_address.set_host_id(node["host_id"])
        use_cluster_secret(token)
        credentials = cluster_files.credentials_at(address)  # TLS for gRPC to other hosts
        self.system = ActorSystem.start_in_thread(name="driver", token=token, tcp=f"{node['address']}:0",
                                                  tls=credentials.tls if credentials else None)
        self.log_sink = self.system.run(_spawn(self.system, LogSink, "log_sink")) if log_to_driver else None
        self.endpoints = NodeEndpoints.from_record(node, etcd=address)
        self.view = {n["node_id"]: n for n in nodes}
        self.object_replicas = config.object_replicas

    def stop(self) -> None:
        """Stop the driver's actor system (the cluster runs on)."""
        from .kernel import address as kernel_address

        if self.system is not None:
            self.system.shutdown_sync()
        kernel_address.set_host_id(None)


def _runs_here(record: dict) -> bool:
    """Whether the node of `record` runs on this host: its actor system's Unix socket, named
    after a random id, is open here (a hostname or machine-id may be cloned; that cannot)."""
    from .kernel import address as kernel_address
    from .kernel.ref import parse_uri

    try:
        node_address, _ = parse_uri(record["uris"]["node"])
    except (KeyError, TypeError, ValueError):
        return False
    return kernel_address.listening_here(node_address.uds)


async def _read_cluster(address: str, cluster: str, auth: dict | None, token: str):
    from .gcs import SealedEtcd
    from .gcs.schema import ClusterConfig, key

    client = await SealedEtcd.connect(address, secret=token, timeout=10, **({"auth": auth} if auth else {}))
    try:
        nodes = [json.loads(value) for _, value in await client.get_prefix(key(cluster, "nodes", ""))]
        config = ClusterConfig.from_json(await client.get(key(cluster, "config")))
    finally:
        await client.close()
    return nodes, config


class LocalCluster:
    """What init() started in local mode, stopped in reverse order by `stop`."""

    def __init__(self) -> None:
        self.etcd = None
        self.system: ActorSystem | None = None
        self.node: NodeProcess | None = None
        self.endpoints: NodeEndpoints | None = None
        self.node_id = uuid.uuid4().hex[:12]
        self.view: dict[str, dict] | None = None  # the node's own, made by the CoreWorker
        self.object_replicas = 1
        self.log_sink: ActorRef | None = None  # the node prints to the driver's sink itself
        self.spill_base: str | None = None
        self.token: str | None = None  # this session's cluster token (the local dashboard's login)

    def start(self, num_cpus: float, num_gpus: float, resources: dict, log_to_driver: bool, *,
              gpu_ids: list[str] | None = None, memory: float | None = None,
              object_store_memory: int | None = None, object_spilling_directory: str | None = None,
              metrics_export_port: int | None = None, dashboard: str | None = None) -> None:
        """Start etcd, the node and the driver's actor system; raise RayError if the node fails.
        `dashboard`: "HOST:PORT" where the node serves the web dashboard (None: none)."""
        from .gcs import EtcdServer
        from .gcs.etcd_server import _free_port

        # The node process imports for ~0.2 s before it needs etcd: start it first and the
        # etcd server meanwhile (the node's GcsLink connects with retries).
        etcd_port = _free_port()
        # A fresh cluster token: the node and its workers get it on a pipe (never in their
        # environment), and every connection between them must present it.
        token = new_token()
        use_cluster_secret(token)
        self.system = ActorSystem.start_in_thread(name="driver", token=token)
        sink = self.system.run(_spawn(self.system, LogSink, "log_sink"))
        config = NodeConfig(
            node_id=self.node_id, etcd=f"127.0.0.1:{etcd_port}", num_cpus=num_cpus, num_gpus=num_gpus,
            resources=resources, driver=sink.to_uri(), log_sink=sink.to_uri() if log_to_driver else None,
            cwd=os.getcwd(), sys_path=[p or os.getcwd() for p in sys.path], gpu_ids=gpu_ids, memory=memory,
            object_store_memory=object_store_memory, object_spilling_directory=object_spilling_directory,
            metrics_export_port=metrics_export_port, dashboard=dashboard,
        )
        self.spill_base = object_spilling_directory
        self.token = token
        self.node = launch(config, token=token)
        self.etcd = EtcdServer(client_port=etcd_port).start()
        try:
            self.endpoints = self.node.wait_ready(timeout=None)
        except NodeStartError as error:
            raise exc.RayError(f"{error} (see its output above)") from None

    def stop(self) -> None:
        """Stop the node (asking it first, then by signal), the driver's actor system and etcd,
        and remove the node's shared memory."""
        process = self.node.process if self.node is not None else None
        if process is not None and process.poll() is None:
            try:
                if self.endpoints is not None:
                    self.system.ref_from_uri(self.endpoints.node).tell(Shutdown())
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            except Exception:  # noqa: BLE001 - the node did not stop on SIGKILL: try SIGTERM as a last resort
                process.terminate()
                process.wait(15)
        if self.node is not None:
            self.node.close()
        if self.system is not None:
            self.system.shutdown_sync()
        if self.etcd is not None:
            self.etcd.stop()
        from .objects import cleanup_session
        from .objects.spill import remove_spill_directory

        cleanup_session(self.node_id)
        remove_spill_directory(self.node_id, self.spill_base)


async def _spawn(system: ActorSystem, factory, name: str, *args):
    return system.spawn(factory, *args, name=name)
