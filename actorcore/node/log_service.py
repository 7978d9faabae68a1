"""The LogService actor: a node's log files, listed and read for ``actorcore logs``, the
`actorcore.util.logs` API and the dashboard (docs/architecture.md, "Logs").

It answers `ListLogFiles` with the files of its node (its workers' files in the node's log
folder, see `node.log_files`, and the node process's own log) and `ReadLog` with part of one:
its last lines, or what follows an offset (``--follow`` reads on from where it stopped), never
more than a bound per answer. A worker's file is found by its name, its pid or its worker id.
Only the files of its node's log folder can be read: a name with a folder in it, or ``..``,
is refused with an error that says so, and a symbolic link there is not a log file. Files are
read on a thread, off the node's loop.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from pathlib import Path

from ..kernel import Actor
from ..protocol import ListLogFiles, ReadLog
from .log_files import STREAM_SUFFIXES

__all__ = ["MAX_READ_BYTES", "LogService", "read_from", "read_tail"]

MAX_READ_BYTES = 4 << 20  # the most one answer carries, whatever is asked
_BLOCK = 64 << 10


class LogService(Actor):
    """Lists and reads the log files of node `node_id`: those in `folder` (None: it keeps none)
    and its own `node_log`, if there is one."""

    def __init__(self, node_id: str, folder: str | None, node_log: str | None = None) -> None:
        self.node_id = node_id
        self.folder = Path(folder).resolve() if folder else None
        self.node_log = Path(node_log) if node_log else None

    async def receive(self, message):
        if isinstance(message, ListLogFiles):
            return {"node_id": self.node_id, "files": await asyncio.to_thread(self._list, message.glob)}
        if isinstance(message, ReadLog):
            try:
                return await asyncio.to_thread(self._read, message)
            except (OSError, ValueError) as error:
                return {"error": str(error) if isinstance(error, ValueError) else
                        f"cannot read a log file of node {self.node_id}: {error.strerror or error}"}
        return None

    def _files(self) -> dict[str, Path]:
        files = {}
        if self.node_log is not None and self.node_log.is_file():
            files[self.node_log.name] = self.node_log
        if self.folder is not None and self.folder.is_dir():
            for entry in os.scandir(self.folder):
                if entry.is_file(follow_symlinks=False):
                    files[entry.name] = Path(entry.path)
        return files

    def _list(self, glob: str) -> list[dict]:
        found = []
        for name, path in sorted(self._files().items()):
            if fnmatch.fnmatchcase(name, glob):
                try:
                    stat = path.stat()
                except OSError:
                    continue  # removed meanwhile (rotation, an ended worker's files pruned)
                found.append({"name": name, "size": stat.st_size, "mtime": stat.st_mtime})
        return found

    def _read(self, message: ReadLog) -> dict:
        path = self._resolve(message)
        limit = max(1, min(int(message.max_bytes), MAX_READ_BYTES))
        if message.tail is not None and message.tail >= 0:
            data, offset, file_id = read_tail(path, message.tail, limit)
        else:
            data, offset, file_id = read_from(path, max(0, int(message.offset or 0)), limit, message.file_id)
        return {"name": path.name, "data": data, "offset": offset, "size": path.stat().st_size, "file_id": file_id}

    def _resolve(self, message: ReadLog) -> Path:
        """The file `message` names; ValueError saying why when there is none (or it is not ours)."""
        if message.name is not None:
            name = message.name
            if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
                raise ValueError(f"{name!r} is not a log file name: give a name as `actorcore logs` lists it "
                                 "(no folder, no '..'); only files of the node's log folder can be read")
            path = self._files().get(name)
            if path is None:
                raise ValueError(f"node {self.node_id} has no log file {name!r}")
            return path
        if message.stream not in STREAM_SUFFIXES:
            raise ValueError(f"stream must be 'stdout' or 'stderr', got {message.stream!r}")
        if message.pid is None and not message.worker_id:
            raise ValueError("a log read names a file, a pid or a worker id")
        suffix = STREAM_SUFFIXES[message.stream]
        pattern = (f"worker-*-{int(message.pid)}.{suffix}" if message.pid is not None
                   else f"worker-{message.worker_id}-*.{suffix}")
        matches = [path for name, path in self._files().items() if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            which = f"pid {message.pid}" if message.pid is not None else f"worker id {message.worker_id!r}"
            raise ValueError(f"node {self.node_id} has no {message.stream} log of a worker with {which} "
                             "(its files may have been removed: a node keeps those of its newest ended workers)")
        return max(matches, key=lambda path: path.stat().st_mtime)


def read_tail(path: Path, lines: int, max_bytes: int) -> tuple[bytes, int, int]:
    """The last `lines` lines of `path` (at most `max_bytes`, the newest), its size and its file id."""
    with open(path, "rb") as file:
        file_id = os.fstat(file.fileno()).st_ino
        end = file.seek(0, os.SEEK_END)
        if lines == 0:
            return b"", end, file_id
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
            step = min(_BLOCK, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    kept = b"".join(data.splitlines(keepends=True)[-lines:])
    return kept[-max_bytes:], end, file_id


def read_from(path: Path, offset: int, max_bytes: int, file_id: int | None = None) -> tuple[bytes, int, int]:
    """What `path` holds from byte `offset` on (at most `max_bytes`), where the next read starts,
    and the file's id. A file that is not the one `file_id` names, or is shorter than `offset`,
    was rotated since: it is read from its start."""
    with open(path, "rb") as file:
        current = os.fstat(file.fileno()).st_ino
        end = file.seek(0, os.SEEK_END)
        if offset > end or (file_id is not None and file_id != current):
            offset = 0
        file.seek(offset)
        data = file.read(min(max_bytes, end - offset))
    return data, offset + len(data), current
