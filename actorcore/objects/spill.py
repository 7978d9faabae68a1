"""Spill files: where a node's store keeps objects that no longer fit its arena
(docs/architecture.md, "The node's object store").

`SpillDirectory` is the folder of one node's store, ``actorcore-spill-<node id>`` under the
spill base (``--object-spilling-directory``, else the system's temporary folder). Each spilled
object is one file named by its object id, mode 0600, in a folder of mode 0700. Writes and
reads are plain blocking file I/O: the store runs them in a thread.

The folder goes when its node stops (`remove`), or, for a node that was killed, when whoever
cleans up after it calls `remove_spill_directory` with the same base.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["SpillDirectory", "remove_spill_directory", "spill_directory"]

_OBJECT_ID = re.compile(r"[A-Za-z0-9_.\-]+")


def spill_directory(node_id: str, base: str | os.PathLike | None = None) -> Path:
    """The spill folder of node `node_id` under `base` (default: the temporary folder)."""
    return Path(base or tempfile.gettempdir()) / f"actorcore-spill-{node_id}"


def remove_spill_directory(node_id: str, base: str | os.PathLike | None = None) -> bool:
    """Remove node `node_id`'s spill folder and every file in it; whether there was one."""
    path = spill_directory(node_id, base)
    if not path.exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


class SpillDirectory:
    """One node's spill files (see the module's docstring)."""

    def __init__(self, node_id: str, base: str | os.PathLike | None = None) -> None:
        self.path = spill_directory(node_id, base)
        self._made = False

    def file(self, object_id: str) -> Path:
        """The path of `object_id`'s file."""
        return self._file(object_id)

    def _file(self, object_id: str) -> Path:
        if not _OBJECT_ID.fullmatch(object_id) or object_id in (".", ".."):
            raise ValueError(f"not an object id: {object_id!r}")
        return self.path / object_id

    def write(self, object_id: str, data: memoryview) -> None:
        """Write `data` as `object_id`'s file (OSError, e.g. ENOSPC, if the disk refuses;
        nothing is left behind then)."""
        if not self._made:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._made = True
        path = self._file(object_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            done, size = 0, data.nbytes
            while done < size:
                done += os.write(fd, data[done:])
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def read_into(self, object_id: str, destination: memoryview) -> None:
        """Fill `destination` from `object_id`'s file (OSError if it is missing or short)."""
        with open(self._file(object_id), "rb", buffering=0) as file:
            done, size = 0, destination.nbytes
            while done < size:
                got = file.readinto(destination[done:])
                if not got:
                    raise OSError(f"spill file of object {object_id} is shorter than {size} bytes")
                done += got

    def map(self, object_id: str, size: int) -> mmap.mmap:
        """`object_id`'s file mapped read-only (its bytes through the page cache, no copy);
        OSError if it is missing."""
        with open(self._file(object_id), "rb") as file:
            return mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)

    def delete(self, object_id: str) -> None:
        """Remove `object_id`'s file, if any."""
        self._file(object_id).unlink(missing_ok=True)

    def remove(self) -> None:
        """Remove the folder and every file in it."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._made = False
