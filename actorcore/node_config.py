"""The records a node process is started with and answers with, as JSON on its boundary.

- `NodeConfig`: what a node process is told (``python -m actorcore.node CONFIG_JSON``), built
  by the node launcher for ``init()`` and for ``actorcore start``.
- `NodeEndpoints`: how to reach a node's actors. The node writes it as its ready line; its
  workers get it in their argv (inside a `WorkerConfig`); a driver that joins a cluster
  builds it from the node's record in etcd (`NodeEndpoints.from_record`). Every CoreWorker
  reads its node's endpoints from it.

Secrets are not part of either record: the cluster token and etcd credentials travel in the
environment (`actorcore.env`), never on a command line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["EtcdToStart", "NodeConfig", "NodeEndpoints", "WorkerConfig"]


@dataclass(frozen=True, slots=True)
class EtcdToStart:
    """The etcd a head node runs itself, under its supervisor (see `node.etcd_host`)."""

    port: int
    data_dir: str
    host: str = "127.0.0.1"
    tls: dict[str, str] | None = None  # {"ca", "cert", "key"} PEM files: TLS and client certificates


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What a node process is started with.

    A local node (``init()``) names its `driver` (the node ends with it) and, if the driver
    prints worker output, its `log_sink`. A cluster node (`cluster_mode`, ``actorcore start``)
    names its `cluster`, the IP its endpoints bind (`node_ip`), whether it is the `head`, and a
    head that runs the cluster's etcd says so in `start_etcd`; a head also sets the cluster's
    `lease_ttl` and `object_replicas`.
    """

    node_id: str
    etcd: str  # the etcd endpoints, HOST:PORT[,HOST:PORT...]
    num_cpus: float
    num_gpus: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)
    cwd: str = ""  # the workers' working directory ("": the node's)
    sys_path: list[str] = field(default_factory=list)  # put in front of the workers' sys.path
    ready_fd: int | None = None  # the node writes its `NodeEndpoints` there, as one line
    driver: str | None = None
    log_sink: str | None = None
    cluster_mode: bool = False
    cluster: str = "local"
    node_ip: str = "127.0.0.1"
    head: bool = False
    start_etcd: EtcdToStart | None = None
    lease_ttl: float | None = None  # None: the cluster's setting
    object_replicas: int = 1
    gpu_ids: list[str] | None = None  # the GPUs' device ids (None: 0..num_gpus-1), see node_resources
    memory: float | None = None  # the node's memory resource in bytes (None: node_resources.default_memory)
    #: the object store's capacity in bytes (None: node_resources.default_object_store_memory)
    object_store_memory: int | None = None
    object_spilling_directory: str | None = None  # where spill files go (None: the temporary folder)
    metrics_export_port: int | None = None  # serve /metrics there (0: a free port; None: no metrics)
    #: the web dashboard's "HOST:PORT" (port 0: any free one), served by this node; None: no dashboard
    dashboard: str | None = None

    def to_json(self) -> str:
        """The config as JSON (what a node process gets as its argument)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        """Parse `to_json`'s output."""
        data = json.loads(text)
        etcd = data.pop("start_etcd", None)
        return cls(**data, start_etcd=EtcdToStart(**etcd) if etcd else None)


@dataclass(frozen=True, slots=True)
class NodeEndpoints:
    """How to reach a node: its actors' kernel URIs (`node` is its guard: tell it `Shutdown`
    to stop the node), its resources, and, in a cluster, its gRPC endpoints."""

    node_id: str
    node: str
    scheduler: str
    gcs: str
    object_store: str
    pool: str
    resources: dict[str, float]
    pid: int
    host_id: str
    cluster_mode: bool = False
    kernel: str | None = None  # the node's gRPC endpoint for other hosts (clusters)
    transfer: str | None = None  # its object-transfer endpoint (clusters)
    etcd: str = ""
    metrics: str | None = None  # its MetricsExporter (processes send it their user metrics)
    metrics_export_port: int | None = None  # where it serves /metrics
    task_history: str = ""  # its TaskHistory, which keeps its processes' task events
    logs: str = ""  # its LogService, which lists and reads its log files
    dashboard_url: str | None = None  # the web dashboard it serves, if any

    def uris(self) -> dict[str, str]:
        """The actors' URIs by role, as a node's record in etcd keeps them (``uris``)."""
        uris = {"node": self.node, "scheduler": self.scheduler, "gcs": self.gcs,
                "object_store": self.object_store, "pool": self.pool, "task_history": self.task_history}
        if self.metrics:
            uris["metrics"] = self.metrics
        if self.logs:
            uris["logs"] = self.logs
        return uris

    def to_json(self) -> str:
        """The endpoints as JSON (the node's ready line)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> NodeEndpoints:
        """Parse `to_json`'s output; raise ValueError if `text` is not such a record."""
        try:
            data = json.loads(text)
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"not a node's endpoints: {text[:200]!r} ({error})") from None

    @classmethod
    def from_record(cls, record: dict, etcd: str = "") -> NodeEndpoints:
        """The endpoints of the node whose record (``nodes/<node_id>`` in etcd) is `record`."""
        uris = record["uris"]
        return cls(node_id=record["node_id"], node=uris["node"], scheduler=uris["scheduler"],
                   gcs=uris["gcs"], object_store=uris["object_store"], pool=uris["pool"],
                   resources=dict(record["resources"]), pid=record["pid"], host_id=record["host_id"],
                   cluster_mode=True, kernel=record.get("kernel"), transfer=record.get("transfer"),
                   etcd=etcd, metrics=uris.get("metrics"), metrics_export_port=record.get("metrics_export_port"),
                   task_history=uris.get("task_history", ""), logs=uris.get("logs", ""))


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker process is started with (``python -m actorcore.worker CONFIG_JSON``)."""

    node: NodeEndpoints
    node_ip: str = "127.0.0.1"  # where a cluster worker's gRPC endpoint binds
    sys_path: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """The config as JSON (what a worker process gets as its argument)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        """Parse `to_json`'s output."""
        data = json.loads(text)
        return cls(node=NodeEndpoints(**data.pop("node")), **data)
