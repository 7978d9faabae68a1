"""Shared-memory segments, one per large object, sealed once written and mapped read-only by
readers on the same node (docs/architecture.md, "Objects: put and get").

POSIX shared memory through CPython's `_posixshmem` (``shm_open``/``shm_unlink``, on Linux
and macOS) and `mmap`, *not* `multiprocessing.shared_memory`: its resource_tracker unlinks
segments it believes leaked and warns at exit, while actorcore manages lifetimes itself
(the owner frees an object; `cleanup_session` at node shutdown removes whatever is left).

Choices:

- Names are ``actorcore-<session>-<object_id>.<tag>`` (`segment_name`); a session is
  ``[A-Za-z0-9_]+`` (no ``-``), so ``actorcore-<session>-`` prefixes never overlap and
  `cleanup_session` removes exactly one session's segments. On Linux it lists /dev/shm;
  elsewhere it can only see the segments this process created (a registry).
- Names cannot be guessed by other users of the machine: /dev/shm is shared by all of them,
  and one who created a segment under the name of an object to come made its ``put`` fail.
  The ``<tag>`` is a MAC of session and object id keyed by the cluster secret
  (`use_cluster_secret`, called by every process of a cluster before it names a segment), so
  every process of the cluster computes the same name, with no name to send around, and
  nobody else can. Without a secret (a process outside any cluster) tags are predictable.
  `cleanup_session` leaves alone a segment with its prefix that another user owns: it is not
  ours, and the attempt to remove it would fail.
- `create_segment` reserves the memory with ``posix_fallocate`` where available (Linux):
  tmpfs allocates lazily, and a write through a mapping to memory that cannot be allocated
  kills the process with SIGBUS; reserving first turns that into `SharedMemoryFullError`.
- `open_segment` maps read-only (``PROT_READ``): the memoryview is read-only, so numpy
  arrays built on it are too, and no reader can corrupt a sealed object.
- Lifetime of a mapping: `Segment.close` releases the segment's own view and closes the
  mmap, which unmaps at once when nothing else uses it. When slices of the view are still
  exported (numpy arrays returned by `deserialize`), closing is deferred, never an error:
  each slice holds the mmap object through the memoryview chain, and CPython unmaps it when
  the last one is garbage-collected. Unlinking a name never invalidates existing mappings.
- File descriptors: on Python >= 3.13 mappings keep no descriptor (``trackfd=False``); on
  older Pythons each *live* mapping holds one dup'd descriptor (mmap's own), so a process
  holding thousands of zero-copy arrays at once needs a matching ``RLIMIT_NOFILE``. Writer
  mappings are closed right after writing and cost nothing afterwards.

Measured (Linux VM, tmpfs /dev/shm): `create_segment` + `Segment.close` of a 4 KiB segment
≈ 13 µs; `open_segment` + `Segment.close` ≈ 8 µs whatever the size (pages are faulted in
on first access, cheaply: reading 100 MB through a fresh read-only mapping takes as long
as reading private memory).
"""

from __future__ import annotations

import _posixshmem
import errno
import hashlib
import hmac
import mmap
import os
import re
import sys
import threading

from ..kernel.secret import ClusterSecret

__all__ = [
    "SEGMENT_PREFIX",
    "Segment",
    "SharedMemoryFullError",
    "cleanup_session",
    "create_segment",
    "list_segments",
    "object_id_of",
    "open_fd",
    "open_segment",
    "segment_name",
    "unlink_segment",
    "use_cluster_secret",
]

SEGMENT_PREFIX = "actorcore-"
_SHM_DIR = "/dev/shm"
_SESSION_RE = re.compile(r"[A-Za-z0-9_]+")
_OBJECT_ID_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_TAG_CHARS = 16  # hex digits of a name's tag (64 bits)
_UNKEYED = b"actorcore segment names without a cluster secret"
_name_key = _UNKEYED
_MMAP_EXTRA = {"trackfd": False} if sys.version_info >= (3, 13) else {}
_HAS_FALLOCATE = hasattr(os, "posix_fallocate")
_WRITER_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14
_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)

# Where /dev/shm cannot be listed (macOS), the names of segments this process created and
# has not unlinked are all `cleanup_session` can find. On Linux no registry is kept (it
# would grow with every segment created here but unlinked by another process).
_USE_REGISTRY = not os.path.isdir(_SHM_DIR)
_created: set[str] = set()
_created_lock = threading.Lock()


class SharedMemoryFullError(OSError):
    """Shared memory (/dev/shm) has no room for a new segment."""

    def __init__(self, name: str, size: int) -> None:
        detail = ""
        try:
            st = os.statvfs(_SHM_DIR)
            detail = (
                f"; {st.f_bavail * st.f_frsize} bytes free of {st.f_blocks * st.f_frsize} "
                f"in {_SHM_DIR}"
            )
        except OSError:
            pass
        super().__init__(
            errno.ENOSPC,
            f"shared memory is full: cannot allocate {size} bytes for segment {name!r}{detail}",
        )
        self.name = name
        self.size = size


def use_cluster_secret(token: str | None) -> None:
    """Key this process's segment names by the cluster secret `token` (see the module's
    docstring); None: back to predictable names."""
    global _name_key
    _name_key = _UNKEYED if token is None else ClusterSecret(token).key("shm-name")


def segment_name(session: str, object_id: str) -> str:
    """``actorcore-<session>-<object_id>.<tag>``; session ``[A-Za-z0-9_]+``, id
    ``[A-Za-z0-9_.-]+``, tag a MAC of both (see the module's docstring)."""
    if not _SESSION_RE.fullmatch(session):
        raise ValueError(f"session must match [A-Za-z0-9_]+, got {session!r}")
    if not _OBJECT_ID_RE.fullmatch(object_id):
        raise ValueError(f"object id must match [A-Za-z0-9_.-]+, got {object_id!r}")
    tag = hmac.new(_name_key, f"{session}/{object_id}".encode(), hashlib.sha256).hexdigest()[:_TAG_CHARS]
    return f"{SEGMENT_PREFIX}{session}-{object_id}.{tag}"


def object_id_of(name: str) -> str:
    """The object id in a segment name made by `segment_name`."""
    return name[len(SEGMENT_PREFIX):].split("-", 1)[1][:-(_TAG_CHARS + 1)]


def _path(name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"bad segment name {name!r}")
    return "/" + name


class Segment:
    """A mapped shared-memory segment: ``name``, ``size``, ``readonly`` and ``view``."""

    __slots__ = ("__weakref__", "_mmap", "_view", "name", "readonly", "size")

    def __init__(self, name: str, mm: mmap.mmap, size: int, readonly: bool) -> None:
        self.name = name
        self.size = size
        self.readonly = readonly
        self._mmap: mmap.mmap | None = mm
        self._view: memoryview | None = memoryview(mm)

    @property
    def view(self) -> memoryview:
        """The whole mapping as a 1-D byte memoryview (read-only for `open_segment`)."""
        view = self._view
        if view is None:
            raise ValueError(f"segment {self.name!r} is closed")
        return view

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._view is None

    def close(self) -> None:
        """Release this segment's mapping; idempotent, never fails because of exported views.

        Unmaps at once if no slice of `view` is alive; otherwise the mapping lives until
        the last one is dropped. Does not unlink the name (see `unlink_segment`).
        """
        view, self._view = self._view, None
        mm, self._mmap = self._mmap, None
        if view is not None:
            try:
                view.release()
            except BufferError:  # `view` itself is exported (e.g. np.frombuffer(seg.view))
                pass
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # slices alive: unmapped when the last one is collected
                pass

    def populate(self, start: int, length: int, *, write: bool) -> None:
        """Fill this process's page tables for [start, start+length) of the mapping in one
        call (``MADV_POPULATE_WRITE``/``_READ``) instead of a fault per page; a no-op where
        the kernel lacks it. Pages of a sparse segment that ``write`` touches are allocated."""
        mm = self._mmap
        if mm is None:
            raise ValueError(f"segment {self.name!r} is closed")
        begin = start & -mmap.PAGESIZE
        try:
            mm.madvise(_POPULATE_WRITE if write else _POPULATE_READ, begin, start + length - begin)
        except OSError:  # an older kernel: the pages fault in as they are used
            pass

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._view is None else ("ro" if self.readonly else "rw")
        return f"<Segment {self.name} size={self.size} {state}>"


def create_segment(name: str, size: int, *, reserve: bool = True) -> Segment:
    """Create segment ``name`` of ``size`` bytes (mode 0600, must not exist) and map it writable.

    ``reserve``: allocate and pre-fault all of it now (a writer about to fill it); without, the
    segment is sparse and its pages are allocated as they are first written (the node's arena,
    which allocates its pages itself as its used part grows).
    Raises `FileExistsError` if it exists and `SharedMemoryFullError` if /dev/shm has no room.
    """
    if size <= 0:
        raise ValueError(f"segment size must be positive, got {size}")
    fd = _create_fd(name, size, reserve=reserve)
    try:
        # Pre-fault the whole mapping (Linux) when it is all to be written; never a sparse one
        # (that would allocate all of it).
        mm = mmap.mmap(fd, size, flags=_WRITER_FLAGS if reserve else mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE, **_MMAP_EXTRA)
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    os.close(fd)
    return Segment(name, mm, size, readonly=False)


def _create_fd(name: str, size: int, *, reserve: bool) -> int:
    """Create segment ``name`` sized ``size`` and return its read-write fd (registered).

    ``reserve`` allocates the memory now (``posix_fallocate``) so that later writes through
    a mapping cannot SIGBUS; without it the file is sparse (fine for ``pwrite``, which
    reports ``ENOSPC`` as an error).
    """
    fd = _posixshmem.shm_open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    if _USE_REGISTRY:
        with _created_lock:
            _created.add(name)
    try:
        if reserve and _HAS_FALLOCATE:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                    raise SharedMemoryFullError(name, size) from exc
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                os.ftruncate(fd, size)
        else:
            os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    return fd


def open_segment(name: str, size: int | None = None, *, writable: bool = False) -> Segment:
    """Map existing segment ``name``, read-only unless ``writable``; ``size`` defaults to the
    segment's size.

    Raises `FileNotFoundError` if there is no such segment, `ValueError` if ``size``
    exceeds it.
    """
    fd = open_fd(name, writable=writable)
    try:
        if size is None:
            size = os.fstat(fd).st_size
        if size <= 0:
            raise ValueError(f"segment {name!r}: cannot map {size} bytes")
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ, **_MMAP_EXTRA)
    finally:
        os.close(fd)
    return Segment(name, mm, size, readonly=not writable)


def open_fd(name: str, *, writable: bool = True) -> int:
    """A new descriptor of existing segment ``name``: an open file description of its own
    (what file locks belong to). `FileNotFoundError` if there is no such segment."""
    return _posixshmem.shm_open(_path(name), os.O_RDWR if writable else os.O_RDONLY, 0)


def unlink_segment(name: str) -> bool:
    """Remove segment ``name``; existing mappings stay valid. Idempotent: returns whether
    a segment was removed."""
    if _USE_REGISTRY:
        with _created_lock:
            _created.discard(name)
    try:
        _posixshmem.shm_unlink(_path(name))
    except FileNotFoundError:
        return False
    return True


def list_segments(session: str | None = None) -> list[str]:
    """Names of existing actorcore segments (of ``session`` if given), sorted.

    On Linux from /dev/shm; elsewhere only those this process created.
    """
    if session is not None and not _SESSION_RE.fullmatch(session):
        raise ValueError(f"session must match [A-Za-z0-9_]+, got {session!r}")
    prefix = SEGMENT_PREFIX if session is None else f"{SEGMENT_PREFIX}{session}-"
    if _USE_REGISTRY:
        with _created_lock:
            return sorted(n for n in _created if n.startswith(prefix))
    return sorted(n for n in os.listdir(_SHM_DIR) if n.startswith(prefix))


def cleanup_session(session: str) -> int:
    """Unlink every segment of ``session`` (node shutdown) that this user owns; returns how many
    were removed. Another user's segment with the session's prefix is left alone."""
    removed = 0
    for name in list_segments(session):
        if not _USE_REGISTRY and not _owned(name):
            continue
        try:
            removed += unlink_segment(name)
        except PermissionError:  # not ours after all (e.g. replaced meanwhile)
            continue
    return removed


def _owned(name: str) -> bool:
    try:
        return os.stat(os.path.join(_SHM_DIR, name), follow_symlinks=False).st_uid == os.geteuid()
    except FileNotFoundError:
        return False
