"""A node's worker log files (docs/architecture.md, "Logs").

Each worker process's stdout and stderr go, line by line, to files of its own in the node's log
folder, ``worker-<worker_id>-<pid>.out`` and ``.err``, as well as to the drivers (see
`worker_pool`). A file that would grow past ``max_bytes`` is rotated: it becomes ``.1``, the
older ``.1`` becomes ``.2``, ..., and at most ``backup_count`` backups are kept. The files of a
worker that ended stay, so that a dead actor's output can be read; only the newest
``max_dead_workers`` ended workers keep theirs.

The bounds come from ``ACTORCORE_ROTATION_MAX_BYTES``, ``ACTORCORE_ROTATION_BACKUP_COUNT`` and
``ACTORCORE_MAX_DEAD_WORKER_LOGS`` (`LogLimits.from_env`), read by the node process.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..env import MAX_DEAD_WORKER_LOGS_ENV, ROTATION_BACKUP_COUNT_ENV, ROTATION_MAX_BYTES_ENV

__all__ = ["LogLimits", "RotatingFile", "WorkerLogFiles", "worker_log_name"]

STREAM_SUFFIXES = {"stdout": "out", "stderr": "err"}


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How large a log file grows before it is rotated, how many backups it keeps, and how many
    ended workers keep their files."""

    max_bytes: int = 512 << 20
    backup_count: int = 5
    max_dead_workers: int = 100

    @classmethod
    def from_env(cls, environ: dict | None = None) -> LogLimits:
        """The limits the environment sets (the defaults where it sets none); ValueError names a
        variable whose value is not a whole number in range."""
        environ = os.environ if environ is None else environ
        values = {}
        for field_name, name, minimum in (("max_bytes", ROTATION_MAX_BYTES_ENV, 1),
                                          ("backup_count", ROTATION_BACKUP_COUNT_ENV, 0),
                                          ("max_dead_workers", MAX_DEAD_WORKER_LOGS_ENV, 0)):
            text = environ.get(name)
            if text is None or text == "":
                continue
            try:
                value = int(text)
            except ValueError:
                value = None
            if value is None or value < minimum:
                raise ValueError(f"${name} must be a whole number >= {minimum}, got {text!r}")
            values[field_name] = value
        return cls(**values)


def worker_log_name(worker_id: str, pid: int, stream: str) -> str:
    """The file name of a worker's `stream` ("stdout" or "stderr")."""
    return f"worker-{worker_id}-{pid}.{STREAM_SUFFIXES[stream]}"


class RotatingFile:
    """An append-only file rotated by size (see the module's docstring). Writes are flushed at
    once: readers (``actorcore logs --follow``) see each line as it is written."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._file = _open_private(path)
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        if self.backup_count == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backup_count - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = _open_private(self.path)
        self._size = 0

    def close(self) -> None:
        self._file.close()

    def paths(self) -> list[Path]:
        """The file and its backups that exist."""
        candidates = [self.path, *(self.path.with_name(f"{self.path.name}.{i}")
                                   for i in range(1, self.backup_count + 1))]
        return [path for path in candidates if path.exists()]


def _open_private(path: Path):
    """`path` opened to append, made readable by its owner only (a worker's output may hold secrets)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


class WorkerLogFiles:
    """The log files of a node's workers, in `folder` (made if missing, mode 0700)."""

    def __init__(self, folder: str | os.PathLike, limits: LogLimits | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.limits = limits or LogLimits()
        self._open: dict[int, dict[str, RotatingFile]] = {}  # pid -> stream -> file
        self._ended: deque[list[RotatingFile]] = deque()

    def open(self, worker_id: str, pid: int) -> dict[str, RotatingFile]:
        """The files of a worker that just started: stream -> file."""
        files = {stream: RotatingFile(self.folder / worker_log_name(worker_id, pid, stream),
                                      self.limits.max_bytes, self.limits.backup_count)
                 for stream in STREAM_SUFFIXES}
        self._open[pid] = files
        return files

    def close(self, pid: int) -> None:
        """A worker ended: close its files; remove those of the oldest ended workers beyond the bound."""
        files = self._open.pop(pid, None)
        if files is None:
            return
        for file in files.values():
            file.close()
        self._ended.append(list(files.values()))
        while len(self._ended) > self.limits.max_dead_workers:
            for file in self._ended.popleft():
                for path in file.paths():
                    path.unlink(missing_ok=True)

    def close_all(self) -> None:
        """Close every open file (the node stops; the files stay)."""
        for files in self._open.values():
            for file in files.values():
                file.close()
        self._open.clear()
