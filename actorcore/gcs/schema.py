"""The etcd key schema of a cluster: key builders and the records' fields.

Every key lives under ``/actorcore/<cluster>/`` (`prefix`). Values are JSON unless noted, and
every one is sealed with the cluster secret (`actorcore.gcs.sealed`): what the table below shows
is the value inside the seal, and an exported function's bytes also hash to its id.

| key | value | written |
|---|---|---|
| ``config`` | `ClusterConfig` fields | once, by the head |
| ``nodes/<node_id>`` | node record (below) | by the node, under its lease |
| ``resources/<node_id>`` | ``{"available": {...}, "objects": n, "object_bytes": b, "time": t}`` | by the node, throttled, under its lease |
| ``dead/<node_id>`` | the node record plus ``"died": t`` | by any node that sees the lease expire (idempotent) |
| ``actors/<actor_id>`` | actor record (below) | by the creator's node, on every state change |
| ``named/<namespace>/<name>`` | the actor id (text) | create-if-absent in a transaction |
| ``groups/<namespace>/<name>`` | a named placement group's pickled handle (bytes) | by its creator's node, at creation; deleted at removal |
| ``functions/<hash>`` | the pickled function or class (bytes) | once |
| ``services/<name>`` | a supervised service's record: spec, group, actor id, restarts, times | by the leading ``supervise`` daemon |
| ``services/<name>/checkpoint`` | the service's last checkpoint (pickled, at most 1 MiB) | by the leading daemon |
| ``supervise/leader`` | the leading daemon: pid, host, spec path, lease | create-if-absent, under its lease |
| ``supervise/standby/<lease>`` | a standby daemon: pid, host, spec path | under its lease |
| ``supervise/daemon`` | the leader's record: state, tree, escalations, last reload | by the leading daemon |
| ``supervise/reload`` | a reload request ``{"id", "time"}`` (the leader watches it) | by ``supervise reload`` |
| ``jobs/<submission_id>`` | a submitted job's record (`actorcore.jobs.records`): Ray's JobDetails fields, its log file and pid | by the head's JobManager at submission (create-if-absent: ids are unique), then by the job's runner at each status change; deleted by ``DELETE /api/jobs/<id>`` |
| ``packages/<sha256>/meta`` | a runtime env package's size and chunk count (JSON); ``packages/<sha256>/<index>``: its chunks (bytes) | by the uploader, once per content, meta last; deleted (all at once) by the head's package collector once nothing uses it |
| ``package_used/<sha256>`` | ``{"time": t}``: the package's last announced use (an upload, a new reference, a holder's end) | by the uploader before it checks the package exists, and by a holder's node; a collection fails if it changed since the collector read it |
| ``package_refs/<sha256>/<holder>`` | ``{"holder", "node_id", "time"}``: a live process uses the package | by the holder's node, under its lease; deleted when the process ends |
| ``supervision/<group_id>`` | a user's supervision group (`actorcore.supervision_records`): policy, owner, members, restarts, last failure | by the owner's node at the group's start and supervision events, under its lease; deleted when the group stops or its owner ends |

A node record has: ``node_id``, ``address`` (the IP it binds), ``head`` (bool), ``resources``
(totals), ``start_time``, ``pid``, ``host_id`` (the kernel's host identity of its processes),
``kernel`` (``ip:port`` of the node's gRPC endpoint), ``transfer`` (``ip:port`` of its
object-transfer endpoint), ``uris`` (kernel URIs of ``node``, ``scheduler``, ``gcs``,
``object_store``, ``pool``), and ``lease`` (the id of the etcd lease it is registered under:
a node that sees its process gone revokes it). ``nodes/<id>`` is written only while
``dead/<id>`` is absent and ``dead/<id>`` only while ``nodes/<id>`` is absent (one
transaction each), so a node declared dead never registers again under its id.

An actor record has: ``actor_id``, ``class_name``, ``state`` (one of `ACTOR_STATES`),
``node_id``, ``pid``, ``worker`` (the kernel URI of its worker), ``name``, ``namespace``,
``detached``, ``restarts``, ``death_cause``, ``packages`` (the runtime env package URIs its
worker needs: kept while the actor is not DEAD), and for a named actor ``handle`` (its pickled
handle, base64). It is changed by compare-and-swap on its revision; a change an incarnation of
the actor sends about itself carries `ONLY_IF_WORKER` (its worker's URI, not stored) and is made
only while ``worker`` still names it. docs/architecture.md, section "The etcd key schema", says
who reads each key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..env import DEFAULT_LEASE_TTL

__all__ = ["ACTOR_STATES", "DEFAULT_CLUSTER", "ONLY_IF_WORKER", "ClusterConfig", "key", "prefix"]

DEFAULT_CLUSTER = "default"

# Nothing writes PENDING yet; `actorcore status` counts every state listed here.
ACTOR_STATES = ("PENDING", "ALIVE", "RESTARTING", "DEAD")

#: the field of an actor record change that makes it conditional: made only while the record's
#: ``worker`` is this URI (the incarnation that sends it); never stored
ONLY_IF_WORKER = "only_if_worker"


def prefix(cluster: str = DEFAULT_CLUSTER) -> str:
    """The prefix of every key of ``cluster``: ``/actorcore/<cluster>/``."""
    return f"/actorcore/{cluster}/"


def key(cluster: str, *parts: str) -> str:
    """The key of ``parts`` in ``cluster``: ``key("c", "nodes", n)`` is ``/actorcore/c/nodes/<n>``."""
    return prefix(cluster) + "/".join(parts)


@dataclass(frozen=True)
class ClusterConfig:
    """Cluster-wide settings the head writes once; nodes and drivers read them."""

    object_replicas: int = 1
    lease_ttl: float = DEFAULT_LEASE_TTL

    def to_json(self) -> bytes:
        """These settings as the JSON bytes stored in etcd."""
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, blob: bytes | None) -> ClusterConfig:
        """The settings stored in ``blob``; defaults when there is none, and unknown fields are ignored."""
        if not blob:
            return cls()
        data = json.loads(blob)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
