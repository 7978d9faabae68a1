"""The global control store in etcd: a local etcd server and our client.

Every etcd call in actorcore goes through `EtcdClient` (retries via tenacity, a clear
`EtcdUnavailableError` when etcd cannot be reached), and every record is sealed with the
cluster secret through a `SealedEtcd` (`sealed`).
"""

from .etcd_client import (
    EtcdAuthError,
    EtcdClient,
    EtcdUnavailableError,
    Lease,
    Watch,
    WatchCompactedError,
    WatchEvent,
)
from .etcd_server import EtcdNotFoundError, EtcdServer, EtcdStartError, find_etcd_binary
from .sealed import SealedEtcd, TamperedRecordError

__all__ = [
    "EtcdAuthError",
    "EtcdClient",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "EtcdUnavailableError",
    "Lease",
    "SealedEtcd",
    "TamperedRecordError",
    "Watch",
    "WatchCompactedError",
    "WatchEvent",
    "find_etcd_binary",
]
