"""How a node starts a worker for a runtime env: its packages extracted, its variables, its
directory and its import path (docs/architecture.md, "Runtime environments").

`RuntimeEnvSetup.prepare(key)` answers a `WorkerSetup` for the runtime env whose canonical JSON
is `key`: the environment a worker of it gets (the node's, plus the env's ``env_vars``, plus
`RUNTIME_ENV_ENV` = `key` so that the worker knows the env it serves and passes it on to what
it submits, plus `RUNTIME_ENV_PATHS_ENV`: the directories the worker puts first on
``sys.path``), the directory it starts in (its ``working_dir``, else the node's) and, for
``pip`` requirements, the Python of their environment (`pip_envs`). Packages
come from the cluster through the node's GcsLink (`FetchPackage`) and are extracted once per
node (`PackageCache`), under a folder of the node's that goes with it. A setup that fails or
outlasts ``config.setup_timeout_seconds`` (600 s by default, as Ray) raises
`RuntimeEnvSetupError` saying why. `prune` removes the extracted packages the cluster
collected and no worker of the node uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..env import RUNTIME_ENV_ENV, RUNTIME_ENV_PATHS_ENV
from ..exceptions import RuntimeEnvSetupError
from ..kernel import ActorRef
from ..protocol import FetchPackage
from ..runtime_env.package_cache import PackageCache, prune_extracted
from ..runtime_env.packaging import package_uris, sha_of_uri
from .pip_envs import PipEnvs

__all__ = ["DEFAULT_SETUP_TIMEOUT", "RuntimeEnvSetup", "WorkerSetup"]

DEFAULT_SETUP_TIMEOUT = 600.0  # seconds (Ray's default setup_timeout_seconds)
FETCH_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What a worker of one runtime env starts with."""

    key: str  # the runtime env's canonical JSON
    env: dict
    cwd: str
    python: str | None = None  # its pip environment's python (None: the node's)


class _GcsPackages:
    """Packages read through the node's GcsLink (a `PackageStore` for `PackageCache`)."""

    def __init__(self, gcs: ActorRef) -> None:
        self._gcs = gcs

    async def get(self, uri: str) -> bytes:
        return await self._gcs.ask(FetchPackage(uri), timeout=FETCH_TIMEOUT)


class RuntimeEnvSetup:
    """The runtime envs of one node's workers (its WorkerPool's)."""

    def __init__(self, gcs: ActorRef, base_env: dict, base_cwd: str) -> None:
        self._gcs = gcs
        self._base_env = base_env
        self._base_cwd = base_cwd
        self._root: Path | None = None
        self._cache: PackageCache | None = None
        self._pip: PipEnvs | None = None
        self._setups: dict[str, asyncio.Future] = {}  # key -> its WorkerSetup, made once (failures are not kept)

    async def prepare(self, key: str) -> WorkerSetup:
        """The setup of runtime env `key`; RuntimeEnvSetupError if it cannot be made. Asked again
        while it is being made, the same setup is awaited."""
        setup = self._setups.get(key)
        if setup is None:
            setup = self._setups[key] = asyncio.ensure_future(self._prepare_once(key))
            setup.add_done_callback(
                lambda done: (done.cancelled() or done.exception() is not None) and self._setups.pop(key, None))
        return await asyncio.shield(setup)

    async def _prepare_once(self, key: str) -> WorkerSetup:
        runtime_env = json.loads(key)
        timeout = runtime_env.get("config", {}).get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT)
        try:
            setup = await asyncio.wait_for(self._prepare(key, runtime_env), None if timeout == -1 else timeout)
        except asyncio.TimeoutError:
            raise RuntimeEnvSetupError(f"the runtime env was not set up within its {timeout} s "
                                       "(runtime_env={'config': {'setup_timeout_seconds': ...}})") from None
        except RuntimeEnvSetupError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure is the setup's, told to the tasks that need it
            raise RuntimeEnvSetupError(f"{type(error).__name__}: {error}") from None
        return setup

    async def _prepare(self, key: str, runtime_env: dict) -> WorkerSetup:
        env = {**self._base_env, **runtime_env.get("env_vars", {}), RUNTIME_ENV_ENV: key}
        cwd = self._base_cwd
        paths = []
        if "working_dir" in runtime_env:
            cwd = str(await self._packages().ensure(runtime_env["working_dir"]))
            paths.append(cwd)
        paths.extend([str(await self._packages().ensure(uri)) for uri in runtime_env.get("py_modules", ())])
        if paths:
            env[RUNTIME_ENV_PATHS_ENV] = os.pathsep.join(paths)
        python = await self._pip_envs().ensure(runtime_env["pip"]) if "pip" in runtime_env else None
        return WorkerSetup(key, env, cwd, python)

    def _folder(self) -> Path:
        """The node's folder of runtime env files, made at first use."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="actorcore-runtime-envs-"))
        return self._root

    def _packages(self) -> PackageCache:
        if self._cache is None:
            self._cache = PackageCache(self._folder() / "packages", _GcsPackages(self._gcs))
        return self._cache

    def _pip_envs(self) -> PipEnvs:
        if self._pip is None:
            self._pip = PipEnvs(self._folder() / "pip")
        return self._pip

    def extracted(self) -> set[str]:
        """The SHA-256s of the packages extracted on the node."""
        root = self._cache.root if self._cache is not None else None
        if root is None or not root.is_dir():
            return set()
        return {folder.name for folder in root.iterdir() if not folder.name.startswith(".")}

    async def prune(self, keep: set[str]) -> list[str]:
        """Remove the extracted packages whose SHA-256 is not in `keep`, and forget the setups
        that name one (set up again, they fetch it again); the SHA-256s removed."""
        if self._cache is None:
            return []
        for key, setup in list(self._setups.items()):
            if setup.done() and any(sha_of_uri(uri) not in keep for uri in package_uris(key)):
                del self._setups[key]
        return await asyncio.get_running_loop().run_in_executor(None, prune_extracted, self._cache.root, keep)

    def close(self) -> None:
        """Remove the node's extracted packages (its workers have ended)."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
