"""The GcsLink actor: the node's etcd session (docs/architecture.md, "The etcd key schema").

It registers the node under a lease (`nodes/<node_id>`, kept alive by our keepalive; the key
schema is in gcs/schema.py), keeps exported functions (`functions/<hash>`, written once,
cached here so workers ask the node rather than etcd), named actors (`named/<ns>/<name>`,
unique through a create-if-absent transaction) and actor records (`actors/<actor_id>`).

In a cluster it also watches membership: it keeps the live nodes' records (`nodes/`) and
their published loads (`resources/`), sends a `ClusterView` to its subscribers (the
Scheduler, the ObjectStore, CoreWorkers) whenever a node joins or dies, forwards other
nodes' loads to the Scheduler, publishes this node's load (throttled to `LOAD_INTERVAL`),
and records a node whose lease expired under `dead/<node_id>`.

Failure detection (docs/architecture.md, "Failure semantics"): it watches the node guard of
every other node, so a closed kernel connection is seen at once; a connection attempt to that
node's kernel port that is refused confirms that its process is gone, and the node's lease is
then revoked, which every node sees as it sees a lease that expired. Death and registration are
decided by compare-and-swap in etcd: a node is declared dead (`dead/<id>` written) only while
`nodes/<id>` is absent, and registers only while `dead/<id>` is absent, so a node declared dead
never comes back under its id. A node that lost its lease and was declared dead, or that could
not renew it while etcd may be up, downs itself (`on_down`): its actors may run elsewhere now.
An actor record is changed by compare-and-swap on its revision, and a change sent by an actor's
own incarnation (`gcs.schema.ONLY_IF_WORKER`) only while the record still names that worker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from .._logging import get_logger
from ..env import DEFAULT_LEASE_TTL
from ..gcs.etcd_lease import NOT_RENEWED
from ..gcs.reachability import Reachability, reachability
from ..gcs.schema import ONLY_IF_WORKER, ClusterConfig
from ..gcs.sealed import SealedEtcd, TamperedRecordError, check_function
from ..kernel import Actor, ActorRef, Reply, Terminated
from ..kernel.secret import ClusterSecret
from ..protocol import (
    ActorStateChanged,
    AttachScheduler,
    ClusterView,
    EtcdLeaseLost,
    ExportFunction,
    FetchPackage,
    ForgetActor,
    GetActorRecord,
    GetClusterResources,
    GetFunction,
    GetGcsStats,
    HoldPackages,
    ListCoreActors,
    ListNamedActors,
    ListNodes,
    ListPackages,
    LookupActor,
    LookupGroup,
    NameGroup,
    NodeLoad,
    PublishSupervisionGroup,
    ReadRecords,
    RegisterActor,
    StartRegistration,
    StoreUsage,
    SubscribeView,
    UploadPackage,
)
from ..runtime_env.package_store import PackageStore, PackageUpload
from .group_records import GroupRecords
from .package_refs import PackageRefs

__all__ = ["FUNCTION_WAIT", "LOAD_INTERVAL", "PEER_PROBE_DELAYS", "PEER_PROBE_TIMEOUT", "GcsLink"]

log = get_logger(__name__)

FUNCTION_WAIT = 30.0  # how long a request for a function not (yet) exported waits for it
LOAD_INTERVAL = 0.1  # at most this often a node writes its available resources to etcd
ETCD_LATENCY_INTERVAL = 5.0  # how often a node that exports metrics times an etcd round trip
#: the etcd records the state API may read through a node (`ReadRecords`)
_READABLE_KINDS = ("nodes", "dead", "resources", "actors", "groups", "jobs")
PEER_PROBE_TIMEOUT = 1.0  # how long a connection attempt confirming a node's death may take
# when the connection attempts are made: a process that is being torn down may close the
# connection before its listening socket
PEER_PROBE_DELAYS = (0.0, 0.05, 0.1, 0.25, 0.5)
PEER_REWATCH_DELAY = 1.0  # a node whose connection closed but that is not gone is watched again after this
CAS_ATTEMPTS = 20  # compare-and-swap attempts of an actor record's change before it is dropped
MAX_ACTOR_STATES = 100_000  # actors whose last state a node remembers for its metrics


class GcsLink(Actor):
    """The node's etcd session (see the module's docstring)."""

    def __init__(self, etcd_endpoint: str, cluster: str, node_id: str, node_info: dict, *,
                 cluster_mode: bool = False, lease_ttl: float | None = None, etcd_auth: dict | None = None,
                 config: ClusterConfig | None = None, token: str | None = None,
                 on_down: Callable[[str], None] | None = None) -> None:
        self.secret = ClusterSecret(token or "")  # etcd records are sealed with it (gcs.sealed)
        self.endpoint = etcd_endpoint
        self.prefix = f"/actorcore/{cluster}/"
        self.cluster = cluster
        self.node_id = node_id
        self.node_info = node_info
        self.cluster_mode = cluster_mode
        self.lease_ttl = lease_ttl  # None: the cluster's setting (ClusterConfig.lease_ttl)
        self.etcd_auth = etcd_auth
        self.config = config  # the head's settings, written once; others read them
        self.on_down = on_down  # ends the node: it lost its lease and may no longer serve
        self.etcd: SealedEtcd | None = None
        self.lease = None
        self.functions: dict[str, bytes] = {}
        self.waiting: dict[str, list] = {}  # function id -> replies waiting for its export
        self.nodes: dict[str, dict] = {}  # live nodes' records
        self.dead: dict[str, dict] = {}
        self.loads: dict[str, dict] = {}  # node id -> available resources
        self.subscribers: set[ActorRef] = set()
        self.actor_records: dict[str, dict] = {}
        self.scheduler: ActorRef | None = None
        self._load_changed = False  # this node's load changed since it was last written
        self._available: dict = dict(node_info.get("resources", {}))
        self._usage: dict = {"objects": 0, "object_bytes": 0}
        self._load_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._pending_deaths: dict[str, bool] = {}  # node id -> registered again meanwhile
        self._lease_lost_at = float("-inf")
        self._peer_watches: dict[ActorRef, str] = {}  # another node's guard -> its node id
        self._actor_locks: dict[str, list] = {}  # actor id -> [lock, users]: one change of its record at a time
        self._downed = False
        self.etcd_latency: float | None = None  # the last timed etcd round trip (s), once asked for
        self._timing_etcd = False
        self.actor_restarts = 0  # restarts of actors owned by processes of this node (their records pass here)
        #: the last state of each actor whose record passed here (the node's ``actorcore_actors``)
        self.actor_states: OrderedDict[str, str] = OrderedDict()
        self.supervision_groups = GroupRecords(self)  # users' supervision groups owned by this node's processes
        self.package_refs = PackageRefs(self)  # runtime env packages this node's processes use
        self._uploads: dict[str, PackageUpload] = {}  # package URI -> its upload under way
        self._upload_lock = asyncio.Lock()  # pieces are stored one at a time, in the order they came

    async def pre_start(self) -> None:
        self.registered: asyncio.Task | None = None
        if self.cluster_mode:
            self.nodes[self.node_id] = self._record()

    def _record(self) -> dict:
        return {**self.node_info, "node_id": self.node_id, "start_time": self.node_info.get("start_time", time.time())}

    def _start_registration(self) -> asyncio.Task:
        # Registration runs in the background, started once the node's workers are on their
        # way (importing the etcd client alone takes ~0.1 s); requests that need etcd wait.
        if self.registered is None:
            self.registered = asyncio.get_running_loop().create_task(self._register())
        return self.registered

    async def _register(self) -> None:
        from ..gcs import EtcdClient

        self.etcd = SealedEtcd(await EtcdClient.connect(self.endpoint, timeout=15, auth=self.etcd_auth), self.secret)
        if self.cluster_mode:
            if self.config is not None:
                await self.etcd.create_if_absent(self._key("config"), self.config.to_json())
            self.config = ClusterConfig.from_json(await self.etcd.get(self._key("config")))
        if not await self._take_lease():
            raise RuntimeError(f"node {self.node_id} was declared dead (dead/{self.node_id} is in etcd); a node "
                               "never comes back under the id of a dead node: start it with a new id")
        if self.cluster_mode:
            await self._watch_membership()

    async def _take_lease(self) -> bool:
        """Register under a new lease, unless the node was declared dead (then False)."""
        ttl = self.lease_ttl or (self.config.lease_ttl if self.config is not None else DEFAULT_LEASE_TTL)
        ref = self.context.self_ref
        lease = await self.etcd.lease(max(2, round(ttl)), on_lost=lambda _: ref.tell(EtcdLeaseLost()),
                                      expire_locally=self.cluster_mode)
        self.node_info.setdefault("start_time", time.time())
        record = {**self._record(), "lease": lease.id}
        if not await self.etcd.put_unless_exists(self._key("nodes", self.node_id), json.dumps(record).encode(),
                                                 unless=self._key("dead", self.node_id), lease=lease):
            await lease.revoke()
            return False
        self.lease = lease
        return True

    async def _on_lease_lost(self) -> None:
        """The split-brain rule: a node that may have been declared dead stops serving (its
        actors may run elsewhere now). A node whose lease etcd forgot while nobody declared it
        dead (an etcd outage) registers again under its id."""
        ttl = self.lease.ttl
        if self.cluster_mode and self.lease.lost_because == NOT_RENEWED:
            self._down(f"it could not renew its etcd lease for {ttl} s while etcd may be up (this node is cut "
                       "off from etcd): the cluster declares it dead and restarts its actors elsewhere")
            return
        deadline = time.monotonic() + ttl
        for attempt in range(1, 1000):
            try:
                if not await self._take_lease():
                    self._down("its etcd lease expired and the cluster declared it dead; its actors may run "
                               "elsewhere now")
                    return
                for actor_id, record in list(self.actor_records.items()):  # only those etcd forgot
                    await self.etcd.create_if_absent(self._key("actors", actor_id), json.dumps(record).encode())
                await self.package_refs.rewrite()
                break
            except Exception as error:  # noqa: BLE001 - retried for one TTL, then the node downs itself
                if self.cluster_mode and time.monotonic() > deadline:
                    self._down(f"its etcd lease expired and it could not register again for {ttl} s "
                               f"({error!r}): it may have been declared dead")
                    return
                log.warning("registering again failed; retrying", attempt=attempt, error=repr(error))
                await asyncio.sleep(min(0.1 * attempt, 2.0))
        self._schedule_load()
        log.warning("node registered again after its lease was lost; nobody had declared it dead", node=self.node_id)

    def _down(self, why: str) -> None:
        if self._downed:
            return
        self._downed = True
        log.error(f"node {self.node_id} downs itself: {why}. It stops its workers and exits; start a new "
                  "node to rejoin (it gets a new node id)", node=self.node_id)
        if self.on_down is not None:
            self.on_down(f"node {self.node_id} lost its etcd lease: {why}")

    async def _watch_membership(self) -> None:
        items, revision = await self.etcd.get_prefix_with_revision(self._key("nodes", ""))
        self.nodes = {json.loads(value)["node_id"]: json.loads(value) for _, value in items}
        for node_id, record in self.nodes.items():
            self._watch_peer(node_id, record)
        loads, _ = await self.etcd.get_prefix_with_revision(self._key("resources", ""))
        for key, value in loads:
            self._on_load(key.rsplit("/", 1)[1], value)
        self._publish_view(())
        self._spawn(self._follow("nodes", revision + 1, self._on_node_event))
        self._spawn(self._follow("resources", revision + 1, self._on_load_event))

    async def _follow(self, kind: str, revision: int, handle) -> None:
        try:
            async for event in self.etcd.watch_prefix(self._key(kind, ""), start_revision=revision):
                handle(event)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the watch resumes across etcd restarts; anything else is a bug
            log.error("membership watch ended", kind=kind, error=repr(error))

    def _on_node_event(self, event) -> None:
        node_id = event.key.rsplit("/", 1)[1]
        if event.type == "put":
            record = json.loads(event.value)
            joined = node_id not in self.nodes
            if node_id in self._pending_deaths:
                self._pending_deaths[node_id] = True  # it registered again
            self.nodes[node_id] = record
            self.dead.pop(node_id, None)
            if joined:
                log.info("node joined", node=node_id)
                self._watch_peer(node_id, record)
                self._publish_view(())
            return
        if node_id == self.node_id:  # our lease ran out (an etcd outage): we register again
            log.warning("this node's registration expired", node=node_id)
            return
        if node_id in self.nodes and node_id not in self._pending_deaths:
            self._pending_deaths[node_id] = False
            self._spawn(self._confirm_death(node_id))

    async def _confirm_death(self, node_id: str) -> None:
        """A node's lease expired. If ours did too, etcd itself was away (frozen, partitioned)
        longer than the TTL and let every lease lapse: give the node the time to register
        again before declaring it dead, instead of tearing down a healthy cluster."""
        ttl = self.lease.ttl if self.lease is not None else DEFAULT_LEASE_TTL
        try:
            try:
                outage = (time.monotonic() - self._lease_lost_at < 2 * ttl
                          or (self.lease is not None and await self.lease.time_to_live() <= 0))
            except Exception:  # noqa: BLE001 - etcd does not answer: that is an outage too
                outage = True
            if outage:
                log.warning("a node's lease expired while etcd was away; waiting for it to register again",
                            node=node_id)
                await asyncio.sleep(ttl + 1.0)
            if self._pending_deaths.get(node_id):
                log.info("a node registered again after an etcd outage", node=node_id)
                return
            await self._declare_dead(node_id)
        finally:
            self._pending_deaths.pop(node_id, None)

    async def _declare_dead(self, node_id: str) -> None:
        """Record `dead/<node_id>` unless the node registered again meanwhile (one transaction:
        a node is either registered or dead), then tell the subscribers."""
        record = self.nodes.get(node_id)
        if record is None:
            return
        record = {**record, "died": time.time()}
        declared = False
        for attempt in range(1, 1000):
            try:
                declared = await self.etcd.put_unless_exists(self._key("dead", node_id), json.dumps(record).encode(),
                                                             unless=self._key("nodes", node_id))
                break
            except Exception as error:  # noqa: BLE001 - a death is decided in etcd or not at all
                log.warning("could not record a node's death; retrying", node=node_id, error=repr(error))
                await asyncio.sleep(min(0.1 * attempt, 2.0))
        if not declared or self.nodes.pop(node_id, None) is None:
            return
        self.loads.pop(node_id, None)
        log.warning("node died", node=node_id)
        if record.get("host_id"):
            # Its connections may still look open (a hung or partitioned machine): drop them,
            # so that the Scheduler's leases to its drivers and workers are released.
            self.context.system.disconnect_host(record["host_id"], f"its node {node_id} was declared dead")
        self.dead[node_id] = record
        self._publish_view((node_id,))

    def _watch_peer(self, node_id: str, record: dict) -> None:
        """Watch another node's guard: its kernel connection closing is the first sign of its death."""
        uri = record.get("uris", {}).get("node")
        if node_id == self.node_id or not uri or record.get("lease") is None or not record.get("kernel"):
            return
        guard = self.context.system.ref_from_uri(uri)
        self._peer_watches[guard] = node_id
        self.context.watch(guard)

    async def _confirm_peer_gone(self, node_id: str) -> None:
        """The connection to a node closed. Refused on a new attempt: its process is gone, and
        its lease is revoked (every node then declares it dead). Otherwise the lease decides,
        and the node is watched again."""
        record = self.nodes.get(node_id)
        if record is None:
            return
        for delay in PEER_PROBE_DELAYS:
            await asyncio.sleep(delay)
            verdict = await reachability(record["kernel"], PEER_PROBE_TIMEOUT)
            record = self.nodes.get(node_id)
            if record is None:
                return
            if verdict is Reachability.REFUSED:
                break
        if verdict is Reachability.REFUSED:
            log.warning("a node's process is gone (its connection closed, its port refuses connections): "
                        "revoking its lease", node=node_id)
            try:
                await self.etcd.revoke_lease(record["lease"])
            except Exception as error:  # noqa: BLE001 - then its lease expires by itself
                log.warning("could not revoke a dead node's lease", node=node_id, error=repr(error))
            return
        log.warning("the connection to a node closed, but its process may live; its lease decides",
                 node=node_id, seen=verdict.value)
        await asyncio.sleep(PEER_REWATCH_DELAY)
        record = self.nodes.get(node_id)
        if record is not None and node_id not in self._peer_watches.values():
            self._watch_peer(node_id, record)

    def _on_load_event(self, event) -> None:
        node_id = event.key.rsplit("/", 1)[1]
        if event.type == "put":
            self._on_load(node_id, event.value)
        else:
            self.loads.pop(node_id, None)

    def _on_load(self, node_id: str, value: bytes) -> None:
        available = json.loads(value).get("available", {})
        self.loads[node_id] = available
        if node_id != self.node_id and self.scheduler is not None:
            self.scheduler.tell(NodeLoad(node_id, available))

    def _publish_view(self, dead: tuple) -> None:
        view = ClusterView(dict(self.nodes), dead, self._replicas())
        for subscriber in self.subscribers:
            subscriber.tell(view)

    def _replicas(self) -> int:
        return self.config.object_replicas if self.config is not None else 1

    def _schedule_load(self) -> None:
        self._load_changed = True
        if self._load_task is None:
            self._load_task = asyncio.get_running_loop().create_task(self._publish_load())

    async def _publish_load(self) -> None:
        while self._load_changed:
            self._load_changed = False
            load = {"available": self._available, **self._usage, "time": time.time()}
            try:
                await self._start_registration()
                await self.etcd.put(self._key("resources", self.node_id), json.dumps(load).encode(), lease=self.lease)
            except Exception as error:  # noqa: BLE001 - published again on the next interval
                log.warning("could not publish the node's load", error=repr(error))
            await asyncio.sleep(LOAD_INTERVAL)
        self._load_task = None

    async def _update_actor(self, actor_id: str, fields: dict, done: Reply) -> None:
        """Merge `fields` into `actors/<actor_id>` by compare-and-swap; a dead actor's name
        becomes free again. A change carrying `ONLY_IF_WORKER` (sent by an incarnation of the
        actor) is made only while the record still names that worker: a stale incarnation
        (e.g. on a node that was cut off) never marks a newer one dead or frees its name.
        `done` answers an ask of the change once it is over (made, refused or given up)."""
        fields = dict(fields)
        only_if_worker = fields.pop(ONLY_IF_WORKER, None)
        cached = self.actor_records.get(actor_id, {})  # (taken now: a kill may forget it meanwhile)
        users = self._actor_locks.setdefault(actor_id, [asyncio.Lock(), 0])
        users[1] += 1
        try:
            async with users[0]:  # changes are made in the order they came
                await self._start_registration()
                key = self._key("actors", actor_id)
                for _ in range(CAS_ATTEMPTS):
                    blob, revision = await self.etcd.get_with_revision(key)
                    stored = json.loads(blob) if blob else cached
                    if only_if_worker is not None and stored.get("worker") != only_if_worker:
                        if stored.get("worker") is None:  # never published (its owner died first)
                            return
                        log.warning("a stale incarnation's change of an actor record was refused", actor=actor_id,
                                    state=fields.get("state"), writer=only_if_worker, current=stored.get("worker"))
                        return
                    record = {**stored, **fields}
                    if await self.etcd.put_if_revision(key, json.dumps(record).encode(), revision):
                        break
                else:
                    log.warning("could not update an actor record: it kept changing", actor=actor_id)
                    return
                if record.get("state") == "DEAD":
                    self.actor_records.pop(actor_id, None)
                    if record.get("name"):
                        named = self._key("named", record.get("namespace", ""), record["name"])
                        await self.etcd.delete_if_value(named, actor_id.encode())
                else:
                    self.actor_records[actor_id] = record
        except Exception as error:  # noqa: BLE001 - logged; the record is rewritten on the next change
            log.warning("could not update an actor record", actor=actor_id, error=repr(error))
        finally:
            users[1] -= 1
            if not users[1]:
                del self._actor_locks[actor_id]
            done.send(None)

    async def _put(self, key: str, value: bytes) -> None:
        try:
            await self._start_registration()
            await self.etcd.put(key, value)
        except Exception as error:  # noqa: BLE001 - logged; the node keeps running without etcd
            log.warning("etcd write failed", key=key, error=repr(error))

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _time_etcd_forever(self) -> None:
        # Started by the first `GetGcsStats` (a node that exports metrics): one cheap read
        # of the cluster's config key every ETCD_LATENCY_INTERVAL seconds.
        await self._start_registration()
        while True:
            started = time.perf_counter()
            try:
                await self.etcd.get(self._key("config"))
                self.etcd_latency = time.perf_counter() - started
            except Exception as error:  # noqa: BLE001 - etcd unreachable now: timed again next interval
                log.debug("could not time an etcd round trip", error=repr(error))
            await asyncio.sleep(ETCD_LATENCY_INTERVAL)

    async def post_stop(self) -> None:
        if self.registered is not None and not self.registered.done():
            self.registered.cancel()
        for task in list(self._tasks) + ([self._load_task] if self._load_task else []):
            task.cancel()
        if self.etcd is not None:
            try:
                if self.lease is not None and not self._downed:  # (a downed node was recorded dead)
                    await self.lease.revoke()
                    if self.cluster_mode:  # a node that leaves in good order is recorded as dead too
                        record = {**self._record(), "died": time.time(), "stopped": True}
                        await self.etcd.put(self._key("dead", self.node_id), json.dumps(record).encode())
            except Exception as error:  # noqa: BLE001 - etcd gone: the lease expires by itself
                log.warning("could not deregister the node", error=repr(error))
            finally:
                await self.etcd.close()

    async def _persist_function(self, function_id: str, blob: bytes) -> None:
        try:
            await self._start_registration()
            await self.etcd.create_if_absent(self._key("functions", function_id), blob)
        except Exception as error:  # noqa: BLE001 - logged; the GCS serves the function from memory
            log.warning("could not write an exported function to etcd", function=function_id, error=repr(error))

    async def _fetch_function(self, function_id: str) -> None:
        """A function this node has not seen: from etcd (its exporter may write it a little
        later: read again with backoff), or from its exporter's message, if it comes."""
        deadline = time.monotonic() + FUNCTION_WAIT
        delay, failure = 0.01, None
        while function_id in self.waiting and time.monotonic() < deadline:
            try:
                await self._start_registration()
                blob = await self.etcd.get(self._key("functions", function_id))
                if blob is not None:
                    check_function(self._key("functions", function_id), function_id, blob)
            except TamperedRecordError as error:  # refused at once, never retried nor cached
                for reply in self.waiting.pop(function_id, []):
                    reply.fail(error)
                return
            except Exception as error:  # noqa: BLE001 - reported to the asker
                blob, failure = None, error
            if blob is not None:
                self.functions.setdefault(function_id, blob)
                for reply in self.waiting.pop(function_id, []):
                    reply.send(blob)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        for reply in self.waiting.pop(function_id, []):
            reply.fail(LookupError(f"function {function_id} was never exported"
                                   + (f" (etcd: {failure!r})" if failure else "")))

    def _note_actor_state(self, actor_id: str, state: str) -> None:
        states = self.actor_states
        states[actor_id] = state
        states.move_to_end(actor_id)
        if len(states) > MAX_ACTOR_STATES:  # the oldest news goes first: long-dead actors
            states.popitem(last=False)

    async def _named_actors(self, namespace: str | None) -> list[tuple[str, str]]:
        """The (namespace, name) of every named actor that is not dead, in ``namespace`` or all."""
        named_prefix = self._key("named", "") if namespace is None else self._key("named", namespace, "")
        names = await self.etcd.get_prefix(named_prefix)
        if not names:
            return []
        states = {key.rsplit("/", 1)[-1]: json.loads(blob).get("state")
                  for key, blob in await self.etcd.get_prefix(self._key("actors", ""))}
        named = []
        for key, actor_id in names:
            if states.get(actor_id.decode(), "DEAD") == "DEAD":  # (no record: forgotten)
                continue
            actor_namespace, _, name = key[len(self._key("named", "")):].partition("/")
            named.append((actor_namespace, name))
        return sorted(named)

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _packages(self) -> PackageStore:
        return PackageStore(self.etcd, self.cluster)

    async def _upload_piece(self, message: UploadPackage, reply) -> None:
        """Store one piece of a package upload (runtime envs: `UploadPackage`)."""
        async with self._upload_lock:
            try:
                await self._start_registration()
                store = self._packages()
                upload = self._uploads.get(message.uri)
                if message.index == 0:
                    await store.touch(message.uri)  # before it looks (`PackageStore`)
                    if await store.exists(message.uri):
                        reply.send(True)
                        return
                    upload = self._uploads[message.uri] = PackageUpload(store, message.uri, message.size)
                elif upload is None:
                    raise ValueError(f"piece {message.index} of package {message.uri} came without its first")
                done = await upload.add(message.data)
            except Exception as error:  # noqa: BLE001 - reported to the uploader
                self._uploads.pop(message.uri, None)
                reply.fail(error)
                return
            if done:
                del self._uploads[message.uri]
            reply.send(done)

    async def _fetch_package(self, uri: str, reply) -> None:
        try:
            await self._start_registration()
            reply.send(await self._packages().get(uri))
        except Exception as error:  # noqa: BLE001 - reported to the asker
            reply.fail(error)

    async def _hold_packages(self, message: HoldPackages, reply) -> None:
        try:
            await self.package_refs.hold(message.owner, message.uris, self.context.watch)
            reply.send(True)
        except Exception as error:  # noqa: BLE001 - reported to the holder
            reply.fail(error)

    async def _list_packages(self, reply) -> None:
        try:
            await self._start_registration()
            reply.send(frozenset(await self._packages().shas()))
        except Exception as error:  # noqa: BLE001 - reported to the asker
            reply.fail(error)

    async def receive(self, message):
        if isinstance(message, HoldPackages):
            reply = self.context.defer_reply()
            self._spawn(self._hold_packages(message, reply))
            return None
        if isinstance(message, ListPackages):
            reply = self.context.defer_reply()
            self._spawn(self._list_packages(reply))
            return None
        if isinstance(message, UploadPackage):
            reply = self.context.defer_reply()
            self._spawn(self._upload_piece(message, reply))
            return None
        if isinstance(message, FetchPackage):
            reply = self.context.defer_reply()
            self._spawn(self._fetch_package(message.uri, reply))
            return None
        if isinstance(message, GetFunction):
            blob = self.functions.get(message.function_id)
            if blob is not None:
                return blob
            reply = self.context.defer_reply()
            first = message.function_id not in self.waiting
            self.waiting.setdefault(message.function_id, []).append(reply)
            if first:
                self._spawn(self._fetch_function(message.function_id))
            return None
        if isinstance(message, ExportFunction):
            # Served from here at once; written to etcd in the background (off the path of
            # the first task: an exporter does not wait for it).
            if message.function_id not in self.functions:
                try:  # what is served and written to etcd hashes to its id
                    check_function(self._key("functions", message.function_id), message.function_id, message.blob)
                except TamperedRecordError:
                    return False
                self.functions[message.function_id] = message.blob
                for reply in self.waiting.pop(message.function_id, []):
                    reply.send(message.blob)
                self._spawn(self._persist_function(message.function_id, message.blob))
            return True
        if isinstance(message, (NodeLoad, StoreUsage)):
            if isinstance(message, NodeLoad):
                self._available = message.available
            else:
                self._usage = {"objects": message.objects, "object_bytes": message.bytes,
                               "object_store_capacity": message.capacity,
                               "spilled_objects": message.spilled_objects, "spilled_bytes": message.spilled_bytes}
            self._schedule_load()
            return None
        if isinstance(message, SubscribeView):
            if message.subscriber not in self.subscribers:
                self.subscribers.add(message.subscriber)
                self.context.watch(message.subscriber)
            message.subscriber.tell(ClusterView(dict(self.nodes), (), self._replicas()))
            return None
        if isinstance(message, Terminated):
            node_id = self._peer_watches.pop(message.ref, None)
            if node_id is not None:
                self._spawn(self._confirm_peer_gone(node_id))
            self.subscribers.discard(message.ref)
            self.supervision_groups.owner_gone(message.ref)
            self.package_refs.owner_gone(message.ref)
            return None
        if isinstance(message, AttachScheduler):
            self.scheduler = message.scheduler
            for node_id, available in self.loads.items():
                if node_id != self.node_id:
                    self.scheduler.tell(NodeLoad(node_id, available))
            return None
        if isinstance(message, ActorStateChanged):
            state = message.record.get("state")
            if state == "RESTARTING":
                self.actor_restarts += 1
            if state is not None:
                self._note_actor_state(message.actor_id, state)
            self._spawn(self._update_actor(message.actor_id, message.record, self.context.defer_reply()))
            return None
        if isinstance(message, StartRegistration):
            self._start_registration()
            return None
        if isinstance(message, PublishSupervisionGroup):
            self.supervision_groups.publish(message, self.context.watch)
            return None
        if isinstance(message, ListCoreActors):
            return [ref.to_uri() for ref in self.subscribers if ref.actor_id == "core"]
        if isinstance(message, EtcdLeaseLost):
            self._lease_lost_at = time.monotonic()
            self._spawn(self._on_lease_lost())
            return None
        await self._start_registration()  # raises if etcd could not be reached
        if isinstance(message, RegisterActor):
            if message.name is not None:
                key = self._key("named", message.namespace, message.name)
                if not await self.etcd.create_if_absent(key, message.actor_id.encode()):
                    return False
            record = {**self.actor_records.get(message.actor_id, {}), "actor_id": message.actor_id,
                      "name": message.name, "namespace": message.namespace,
                      "handle": base64.b64encode(message.record).decode()}
            record.setdefault("state", "ALIVE")
            self.actor_records[message.actor_id] = record
            await self.etcd.put(self._key("actors", message.actor_id), json.dumps(record).encode())
            return True
        if isinstance(message, LookupActor):
            actor_id = await self.etcd.get(self._key("named", message.namespace, message.name))
            if actor_id is None:
                return None
            blob = await self.etcd.get(self._key("actors", actor_id.decode()))
            if blob is None:
                return None
            record = json.loads(blob)
            if record.get("state") == "DEAD" or "handle" not in record:
                return None
            # Where it runs, so that a detached actor is reached without its (maybe gone) owner.
            worker = (record["worker"], record.get("pid")) if record.get("worker") else None
            return base64.b64decode(record["handle"]), worker
        if isinstance(message, ForgetActor):
            if message.name is not None:
                key = self._key("named", message.namespace, message.name)
                await self.etcd.delete_if_value(key, message.actor_id.encode())
            await self.etcd.delete(self._key("actors", message.actor_id))
            self.actor_records.pop(message.actor_id, None)
            return True
        if isinstance(message, NameGroup):
            key = self._key("groups", message.namespace, message.name)
            if message.forget:
                return await self.etcd.delete_if_value(key, message.handle)
            await self.etcd.put(key, message.handle)
            return True
        if isinstance(message, LookupGroup):
            return await self.etcd.get(self._key("groups", message.namespace, message.name))
        if isinstance(message, ListNodes):
            if self.cluster_mode:
                return ([{**record, "alive": True} for record in self.nodes.values()]
                        + [{**record, "alive": False} for record in self.dead.values()])
            return [{**json.loads(value), "alive": True}
                    for _, value in await self.etcd.get_prefix(self._key("nodes", ""))]
        if isinstance(message, ListNamedActors):
            return await self._named_actors(message.namespace)
        if isinstance(message, GetActorRecord):
            blob = await self.etcd.get(self._key("actors", message.actor_id))
            return json.loads(blob) if blob else None
        if isinstance(message, GetGcsStats):
            if not self._timing_etcd:
                self._timing_etcd = True
                self._spawn(self._time_etcd_forever())
            return {"etcd_roundtrip_seconds": self.etcd_latency, "actor_restarts": self.actor_restarts,
                    "actors_by_state": dict(Counter(self.actor_states.values()))}
        if isinstance(message, ReadRecords):
            if message.kind not in _READABLE_KINDS:
                return None
            return await self.etcd.get_prefix(self._key(message.kind, ""))
        if isinstance(message, GetClusterResources):
            totals: dict[str, float] = {}
            for node_id, record in self.nodes.items():
                total = record.get("resources", {})
                source = self.loads.get(node_id, total) if message.available else total
                for name, quantity in source.items():
                    totals[name] = totals.get(name, 0.0) + quantity
            return totals
        return None
