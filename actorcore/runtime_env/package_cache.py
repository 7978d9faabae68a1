"""A node's packages, extracted once and shared by its workers (docs/architecture.md, "Runtime
environments").

`PackageCache.ensure(uri)` answers the directory package `uri` is extracted in,
``<root>/<sha256>/``, fetching it from the `PackageStore` the first time. Extraction goes to a
temporary directory beside it and is renamed into place, so a directory that exists is
complete, whichever process of the node got there first. A zip entry that would land outside
its directory (an absolute path, ``..``) is refused. `prune_extracted` and
`remove_extracted` remove extracted packages the cluster collected and nothing uses.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from .package_store import PackageStore
from .packaging import sha_of_uri

__all__ = ["PackageCache", "extract", "prune_extracted", "remove_extracted"]


class PackageCache:
    """The packages of one node under `root`, fetched from `store` on first use."""

    def __init__(self, root: str | os.PathLike, store: PackageStore) -> None:
        self.root = Path(root)
        self._store = store
        self._locks: dict[str, asyncio.Lock] = {}

    def path_of(self, uri: str) -> Path:
        """Where package `uri` is (or will be) extracted."""
        return self.root / sha_of_uri(uri)

    async def ensure(self, uri: str) -> Path:
        """The directory package `uri` is extracted in, fetched and extracted if it is not yet."""
        target = self.path_of(uri)
        if target.is_dir():
            return target
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            if not target.is_dir():
                data = await self._store.get(uri)
                await asyncio.get_running_loop().run_in_executor(None, extract, data, target)
        return target


def prune_extracted(root: str | os.PathLike, keep: set[str]) -> list[str]:
    """Remove the packages extracted under `root` whose SHA-256 is not in `keep`; their SHA-256s."""
    root = Path(root)
    names = [folder.name for folder in root.iterdir() if not folder.name.startswith(".")] if root.is_dir() else []
    return remove_extracted(root, [name for name in names if name not in keep])


def remove_extracted(root: str | os.PathLike, shas: list[str]) -> list[str]:
    """Remove packages `shas` extracted under `root`; those that were there. Each is first
    renamed out of its place (at once: a process that looks finds it gone, not half-removed)."""
    root = Path(root)
    removed = []
    for sha in shas:
        folder = root / sha
        if not folder.is_dir():
            continue
        trash = Path(tempfile.mkdtemp(prefix=f".removing-{sha[:12]}-", dir=root))
        try:
            os.rename(folder, trash / sha)
            removed.append(sha)
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    return removed


def extract(data: bytes, target: Path) -> None:
    """Extract zip `data` to directory `target`, atomically (nothing if `target` exists)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for entry in archive.infolist():
                destination = (staging / entry.filename).resolve()
                if not destination.is_relative_to(staging.resolve()):
                    raise ValueError(f"package entry {entry.filename!r} would land outside its directory")
                archive.extract(entry, staging)
                mode = stat.S_IMODE(entry.external_attr >> 16)
                if mode and not entry.is_dir():
                    os.chmod(destination, mode)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
