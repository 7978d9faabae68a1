"""A process's side of runtime envs: the env it runs in, and the env each task or actor it
submits needs, with local directories uploaded as packages (docs/architecture.md, "Runtime
environments").

A driver's env is its job's (``init(runtime_env=...)``, or the one its job was submitted with,
`RUNTIME_ENV_ENV`); a worker's is the one its pool started it for, in the same variable. A
task or actor inherits it, merged with its own option (`spec.merge`). Local paths
(``working_dir``, ``py_modules``) are packed (`packaging.pack`) and uploaded to the cluster
through the node's GcsLink (`UploadPackage`) the first time a process meets them, and replaced
by their package URIs; ``excludes`` only shapes the packing. Before it checks or uploads the
packages an env names, the process has its node reference them for as long as it lives
(`HoldPackages`), so the cluster does not collect them while it may start workers with them.
The result's canonical JSON is what a lease asks its worker to have been started for ("" for
none: the common, free case).
A driver's job env is set up on its node as `init` returns, with a worker started for it
(`WarmRuntimeEnv`), unless its ``config`` says ``eager_install: False``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from ..env import RUNTIME_ENV_ENV
from ..kernel import ActorRef, ActorSystem
from ..protocol import HoldPackages, UploadPackage, WarmRuntimeEnv
from ..runtime_env.package_store import PIECE_BYTES
from ..runtime_env.packaging import pack_local_paths, package_uris
from ..runtime_env.spec import canonical, merge

__all__ = ["RuntimeEnvs"]

UPLOAD_TIMEOUT = 120.0  # seconds an upload of one package to the cluster may take


class RuntimeEnvs:
    """The runtime env of this process and of what it submits (any thread)."""

    def __init__(self, system: ActorSystem, gcs: ActorRef, owner: ActorRef | None = None,
                 scheduler: ActorRef | None = None) -> None:
        self._system = system
        self._gcs = gcs
        self._owner = owner  # this process's core actor: what holds its packages
        self._held: set[str] = set()  # URIs this process's node references for it
        self._scheduler = scheduler  # its node's: told to warm the job env up (a driver)
        self._lock = threading.Lock()
        self._packed: dict[tuple, str] = {}  # (key, absolute path, excludes) -> package URI
        self._uploaded: set[str] = set()  # URIs this process sent to the cluster
        self._keys: dict[str, str] = {}  # an option's JSON -> the merged env's canonical JSON
        inherited = os.environ.get(RUNTIME_ENV_ENV)
        self.current: dict[str, Any] = json.loads(inherited) if inherited else {}
        self.key = canonical(self.current)

    def set_job_env(self, runtime_env: dict[str, Any], packages: dict[str, bytes]) -> None:
        """This driver's job env: `runtime_env` (packed by `pack_local_paths`, its `packages` not
        uploaded yet) over the one its job was submitted with."""
        current = merge(self.current, runtime_env)
        self._hold(current)
        for uri, data in packages.items():
            self._upload(uri, data)
        self.current = current
        self.key = canonical(self.current)
        if self.key and self._scheduler is not None and (self.current.get("config") or {}).get("eager_install", True):
            self._scheduler.tell(WarmRuntimeEnv(self.key))

    def key_for(self, option: Mapping | None) -> str:
        """The canonical JSON of the env a task or actor with runtime_env `option` (checked)
        needs; its local paths are packed and uploaded the first time."""
        if not option:
            return self.key
        option_json = json.dumps(option, sort_keys=True, default=str)
        key = self._keys.get(option_json)
        if key is None:
            with self._lock:
                resolved, packages = pack_local_paths(dict(option), self._packed)
            merged = merge(self.current, resolved)
            self._hold(merged)
            for uri, data in packages.items():
                self._upload(uri, data)
            key = self._keys[option_json] = canonical(merged)
        return key

    def _hold(self, runtime_env: Mapping) -> None:
        """Have the node reference the packages `runtime_env` names while this process lives."""
        uris = tuple(uri for uri in package_uris(dict(runtime_env)) if uri not in self._held)
        if not uris or self._owner is None:
            return
        async def hold() -> None:
            await self._gcs.ask(HoldPackages(self._owner, uris), timeout=UPLOAD_TIMEOUT)

        self._system.run(hold(), UPLOAD_TIMEOUT)
        self._held.update(uris)

    def _upload(self, uri: str, data: bytes) -> None:
        """Send package `uri` to the cluster, piece by piece (the GcsLink stores it once)."""
        if uri in self._uploaded:
            return
        async def upload() -> None:
            for index, start in enumerate(range(0, max(len(data), 1), PIECE_BYTES)):
                piece = UploadPackage(uri, index, data[start:start + PIECE_BYTES], len(data))
                if await self._gcs.ask(piece, timeout=UPLOAD_TIMEOUT):
                    return

        self._system.run(upload(), UPLOAD_TIMEOUT * (len(data) // PIECE_BYTES + 1))
        self._uploaded.add(uri)

