"""`list_named_actors` and `get_node_ip_address` (Ray's `ray.util` names of the same names).

The names of actors are kept in etcd (``named/<namespace>/<name>``, see `actorcore.gcs.schema`);
a driver or worker reaches etcd only through its node's gcs link, which it asks with
`ListNamedActors`. As in Ray, detached and non-detached actors are listed alike, an actor that
is restarting is listed, and a dead one is not.
"""

from __future__ import annotations

import socket

from .. import api, runtime
from ..protocol import ListNamedActors

__all__ = ["get_node_ip_address", "list_named_actors"]

_ASK_TIMEOUT = 30.0


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors of this job's namespace (a list of str); with
    ``all_namespaces=True``, those of every namespace, as dicts ``{"name", "namespace"}``."""
    core = runtime.require()
    if all_namespaces:
        found = core.system.ask_sync(core.gcs, ListNamedActors(None), timeout=_ASK_TIMEOUT)
        return [{"name": name, "namespace": namespace} for namespace, name in found]
    found = core.system.ask_sync(core.gcs, ListNamedActors(core.namespace), timeout=_ASK_TIMEOUT)
    return [name for _, name in found]


def get_node_ip_address(address: str = "8.8.8.8:53") -> str:
    """The IP address of this process's node (the one it binds); before `init()`, the address
    of this machine's interface on the route to ``address`` (no packet is sent), else 127.0.0.1."""
    core = runtime.current()
    if core is not None:
        record = getattr(core.cluster, "view", {}).get(core.node_id)
        if record and record.get("address"):
            return record["address"]
        for node in api.nodes():
            if node["NodeID"] == core.node_id:
                return node["NodeManagerAddress"]
    host, _, port = address.rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(port)))  # a UDP connect only picks the route
            return probe.getsockname()[0]
    except (OSError, ValueError):
        return "127.0.0.1"
