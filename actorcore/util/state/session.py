"""`ClusterSession`: a process's own way into a cluster for state queries, when it is no
driver (the CLI, a script without `init()`): the cluster's etcd and a kernel actor system
holding the cluster token (and TLS identity), as `actorcore status` and a driver reach the
cluster (docs/architecture.md, "Task events and the state API").

``async with ClusterSession(address) as client`` gives a `StateClient`; leaving closes both.
`address` is the cluster's etcd (``HOST:PORT``), or None/"auto" for the cluster started or
joined on this machine.
"""

from __future__ import annotations

from typing import Any

from ... import cluster_files as files
from .client import EtcdRecords, StateClient

__all__ = ["ClusterSession", "resolve_address"]

ETCD_CONNECT_TIMEOUT = 5.0


def resolve_address(address: str | None) -> str:
    """The etcd address `address` names (None or "auto": this machine's cluster); ConnectionError
    if there is none."""
    if address in (None, "auto"):
        address = (files.read_cluster_info() or {}).get("address")
        if not address:
            raise ConnectionError("no cluster to ask: none was started or joined on this machine "
                                  "(`actorcore start --head`); pass the address of its etcd, HOST:PORT")
    return address


class ClusterSession:
    """The etcd and the actor system of one state query (see the module's docstring)."""

    def __init__(self, address: str | None, auth: dict | None = None) -> None:
        self.address = resolve_address(address)
        self.cluster, recorded_auth = files.cluster_at(self.address)
        self.auth = recorded_auth if auth is None else auth
        self.etcd: Any = None
        self.system: Any = None

    async def __aenter__(self) -> StateClient:
        from ...gcs.sealed import SealedEtcd
        from ...kernel import ActorSystem

        token = files.read_token()
        credentials = files.credentials_at(self.address)
        self.etcd = await SealedEtcd.connect(self.address.split(","), secret=token, timeout=ETCD_CONNECT_TIMEOUT,
                                             **({"auth": self.auth} if self.auth else {}))
        try:
            # It only asks: it listens nowhere, answers come back on the streams it opens.
            self.system = await ActorSystem.start(name="state", uds=False, token=token,
                                                  tls=credentials.tls if credentials else None)
        except BaseException:
            await self.etcd.close()
            raise
        return StateClient(self.system, EtcdRecords(self.etcd, self.cluster))

    async def __aexit__(self, *exc_info) -> None:
        try:
            await self.system.shutdown(timeout=2)
        finally:
            await self.etcd.close()
