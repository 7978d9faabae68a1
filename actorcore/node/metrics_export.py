"""A node's ``/metrics`` endpoint in Prometheus text format (docs/architecture.md, "Metrics").

`MetricsExporter` is an actor of the node (started when the node has a metrics export port).
It keeps the latest user-metrics snapshot of each process of the node (`MetricsSnapshot`,
sent every few seconds by `actorcore.util.metrics`) and forgets a process that has not
reported for `PROCESS_EXPIRY` seconds (it ended). On each scrape it asks the node's actors for
their state (object store usage and transfers, workers and leases, resources, the last etcd round trip,
actor restarts, tasks and actors by state) and
renders it, with the user metrics summed over processes, through a `prometheus_client`
collector. The HTTP server is aiohttp on the node's own loop: the state comes from actors on
that loop, so a scrape needs no thread and no cross-thread ask.

On the head of a cluster it also writes the Prometheus file-service-discovery JSON
(`cluster_files.metrics_discovery_path`) from the cluster views, and removes it when it stops.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .._logging import get_logger
from ..cluster_files import remove_metrics_discovery, write_metrics_discovery
from ..kernel import Actor, ActorRef
from ..protocol import (
    ClusterView,
    CountTaskStates,
    GetGcsStats,
    GetResources,
    GetSchedulerStats,
    GetStoreUsage,
    MetricsSnapshot,
    SubscribeView,
)

__all__ = ["PREFIX", "PROCESS_EXPIRY", "GetMetricsPort", "MetricsExporter", "SupervisionCounts"]

log = get_logger(__name__)

PREFIX = "actorcore_"
PROCESS_EXPIRY = 30.0  # seconds without a snapshot after which a process is taken as ended
ASK_TIMEOUT = 5.0


class GetMetricsPort:
    """Ask a MetricsExporter for the port its ``/metrics`` is served on."""


class SupervisionCounts:
    """Counts the node's supervision events by kind (pass `record` as the supervisor's on_event)."""

    def __init__(self) -> None:
        self.by_kind: Tally[str] = Tally()

    def record(self, event) -> None:
        """Count `event` (a `supervisor.SupervisorEvent`)."""
        self.by_kind[event.kind] += 1


class MetricsExporter(Actor):
    """Serves the node's ``/metrics`` on `host`:`port` (0: a free one; see the module's docstring)."""

    def __init__(self, node_id: str, session_name: str, node_ip: str, host: str, port: int, *,
                 store: ActorRef, scheduler: ActorRef, gcs: ActorRef, task_history: ActorRef | None = None,
                 events: SupervisionCounts | None = None,
                 write_discovery: bool = False, process_expiry: float = PROCESS_EXPIRY) -> None:
        self.labels = {"NodeId": node_id, "SessionName": session_name, "NodeAddress": node_ip}
        self.host = host
        self.port = port
        self.store = store
        self.scheduler = scheduler
        self.gcs = gcs
        self.task_history = task_history
        self.events = events or SupervisionCounts()
        self.write_discovery = write_discovery
        self.process_expiry = process_expiry
        self.snapshots: dict[str, tuple[float, dict]] = {}  # process id -> (monotonic time, its metrics)
        self.state: dict = {}  # the node's state as of the scrape being rendered
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_NodeCollector(self))
        self.runner: web.AppRunner | None = None

    async def pre_start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        if self.write_discovery:
            self.gcs.tell(SubscribeView(self.self_ref))
        log.debug("serving metrics", host=self.host, port=self.port)

    async def post_stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.write_discovery:
            remove_metrics_discovery()

    async def receive(self, message):
        if isinstance(message, MetricsSnapshot):
            self.snapshots[message.process_id] = (time.monotonic(), message.metrics)
        elif isinstance(message, GetMetricsPort):
            return self.port
        elif isinstance(message, ClusterView):
            self._write_discovery(message.nodes)
        return None

    def _write_discovery(self, nodes: dict) -> None:
        targets = [f"{record['address']}:{record['metrics_export_port']}" for record in nodes.values()
                   if record.get("metrics_export_port")]
        try:
            write_metrics_discovery(targets)
        except OSError as error:
            log.warning("could not write the Prometheus service-discovery file", error=repr(error))

    async def _serve(self, _request: web.Request) -> web.Response:
        self.state = await self._gather()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _gather(self) -> dict:
        asks = {"store": self.store.ask(GetStoreUsage(), timeout=ASK_TIMEOUT),
                "total": self.scheduler.ask(GetResources(False), timeout=ASK_TIMEOUT),
                "available": self.scheduler.ask(GetResources(True), timeout=ASK_TIMEOUT),
                "scheduler": self.scheduler.ask(GetSchedulerStats(), timeout=ASK_TIMEOUT),
                "gcs": self.gcs.ask(GetGcsStats(), timeout=ASK_TIMEOUT)}
        if self.task_history is not None:
            asks["tasks"] = self.task_history.ask(CountTaskStates(), timeout=ASK_TIMEOUT)
        answers = await asyncio.gather(*asks.values(), return_exceptions=True)
        state = {}
        for key, answer in zip(asks, answers, strict=True):
            if isinstance(answer, BaseException):
                log.debug("a node actor did not answer a scrape", part=key, error=repr(answer))
            else:
                state[key] = answer
        now = time.monotonic()
        for process_id in [p for p, (seen, _) in self.snapshots.items() if now - seen > self.process_expiry]:
            del self.snapshots[process_id]
        return state


class _NodeCollector:
    """A prometheus_client collector over a MetricsExporter's gathered state and snapshots."""

    def __init__(self, exporter: MetricsExporter) -> None:
        self.exporter = exporter

    def collect(self):
        exporter = self.exporter
        keys = list(exporter.labels)
        base = list(exporter.labels.values())
        state = exporter.state

        def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
            family = GaugeMetricFamily(PREFIX + name, doc, labels=keys + list(labels))
            family.add_metric(base + list(labels.values()), value)
            return family

        store = state.get("store")
        if store is not None:
            yield gauge("object_store_used_bytes", "Bytes of objects in the node's object store.", store.bytes)
            yield gauge("object_store_capacity_bytes", "The node's object store capacity in bytes.", store.capacity)
            yield gauge("object_store_spilled_bytes", "Bytes of the node's objects spilled to disk.",
                        store.spilled_bytes)
            objects = GaugeMetricFamily(PREFIX + "object_store_objects", "Objects in the node's object store.",
                                        labels=[*keys, "Location"])
            objects.add_metric([*base, "IN_MEMORY"], store.objects)
            objects.add_metric([*base, "SPILLED"], store.spilled_objects)
            yield objects
            for name, doc, pulled, sent in (
                    ("object_transfers", "Objects moved between this node and others.", store.pulled_objects,
                     store.sent_objects),
                    ("object_transfer_bytes", "Bytes of objects moved between this node and others.",
                     store.pulled_bytes, store.sent_bytes)):
                moved = CounterMetricFamily(PREFIX + name, doc, labels=[*keys, "Direction"])
                moved.add_metric([*base, "IN"], pulled)
                moved.add_metric([*base, "OUT"], sent)
                yield moved
        stats = state.get("scheduler")
        if stats is not None:
            workers = GaugeMetricFamily(PREFIX + "workers", "The node's worker processes by state.",
                                        labels=[*keys, "State"])
            workers.add_metric([*base, "IDLE"], stats["idle_workers"])
            workers.add_metric([*base, "BUSY"], stats["busy_workers"])
            yield workers
            yield gauge("leases_active", "Worker leases held now.", stats["active_leases"])
            yield gauge("leases_pending", "Lease requests waiting for a worker or resources.", stats["pending_leases"])
            granted = CounterMetricFamily(PREFIX + "leases_granted", "Worker leases granted since the node started.",
                                          labels=keys)
            granted.add_metric(base, stats["leases_granted"])
            yield granted
        if "total" in state and "available" in state:
            resources = GaugeMetricFamily(PREFIX + "resources", "The node's resources, total and available.",
                                          labels=[*keys, "Name", "State"])
            for name, total in sorted(state["total"].items()):
                resources.add_metric([*base, name, "TOTAL"], total)
                resources.add_metric([*base, name, "AVAILABLE"], state["available"].get(name, 0.0))
            yield resources
        gcs = state.get("gcs")
        if gcs is not None:
            if gcs["etcd_roundtrip_seconds"] is not None:
                yield gauge("etcd_roundtrip_seconds", "The last timed etcd round trip of the node.",
                            gcs["etcd_roundtrip_seconds"])
            restarts = CounterMetricFamily(PREFIX + "actor_restarts", "Restarts of actors owned on this node.",
                                           labels=keys)
            restarts.add_metric(base, gcs["actor_restarts"])
            yield restarts
        events = CounterMetricFamily(PREFIX + "supervision_events", "The node's supervision events by kind.",
                                     labels=[*keys, "Kind"])
        for kind, count in sorted(exporter.events.by_kind.items()):
            events.add_metric([*base, kind], count)
        yield events
        for name, counts, doc in (
                ("tasks", state.get("tasks", {}),
                 "The tasks that ran on the node, and those its processes submitted that no worker started yet."),
                ("actors", (gcs or {}).get("actors_by_state", {}),
                 "The actors created by the node's processes, by their last known state.")):
            family = GaugeMetricFamily(PREFIX + name, doc, labels=[*keys, "State"])
            for state_name, count in sorted(counts.items()):
                family.add_metric([*base, state_name], count)
            yield family
        yield from _user_families(exporter.snapshots.values(), keys, base)


def _user_families(snapshots, keys: list[str], base: list[str]):
    """The user metrics of all processes, each series summed over the processes that have it."""
    merged: dict[tuple[str, str], dict] = {}
    for _, metrics in snapshots:
        for (kind, name), entry in metrics.items():
            into = merged.get((kind, name))
            if into is None or into["tag_keys"] != entry["tag_keys"] or into["boundaries"] != entry["boundaries"]:
                if into is not None:
                    continue  # declared differently by another process: the first one seen is kept
                into = merged[(kind, name)] = {**entry, "series": {}}
            series = into["series"]
            for tags, value in entry["series"].items():
                if kind == "histogram":
                    old = series.get(tags)
                    series[tags] = list(value) if old is None else [a + b for a, b in zip(old, value, strict=True)]
                else:
                    series[tags] = series.get(tags, 0.0) + value
    for (kind, name), entry in sorted(merged.items()):
        labels = keys + list(entry["tag_keys"])
        if kind == "counter":
            family = CounterMetricFamily(PREFIX + name, entry["description"], labels=labels)
            for tags, value in entry["series"].items():
                family.add_metric(base + list(tags), value)
        elif kind == "gauge":
            family = GaugeMetricFamily(PREFIX + name, entry["description"], labels=labels)
            for tags, value in entry["series"].items():
                family.add_metric(base + list(tags), value)
        else:
            family = HistogramMetricFamily(PREFIX + name, entry["description"], labels=labels)
            bounds = [*[str(b) for b in entry["boundaries"]], "+Inf"]
            for tags, counts in entry["series"].items():
                cumulative, running = [], 0.0
                for bound, count in zip(bounds, counts[:-1], strict=True):
                    running += count
                    cumulative.append((bound, running))
                family.add_metric(base + list(tags), cumulative, counts[-1])
        yield family
