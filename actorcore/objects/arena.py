"""A node's shared-memory arena: one file in /dev/shm that holds every large object of the node,
written once into warm pages and read zero-copy (docs/architecture.md, "The node's object store").

The node's ObjectStore owns the arena (`Arena`): it creates the file, hands out its extents
(`allocator.ExtentAllocator`), frees them, spills objects to disk and restores them. Every
process of the node that writes or reads large objects maps the whole file once
(`ArenaClient`) and copies into it or reads from it without asking the store, except to
allocate.

An extent holds one object: a 64-byte header, then the object's bytes (the layout of
`serialization`). The header says which object the extent holds: magic ``ACBK``, the size,
and a 16-byte digest of the object id. A reader knows from the owner where the object was
put (the ``offset`` of its `InShm` payload), but the object may have been spilled and the
extent reused since: the header tells.

Pins: a reader must keep the store from reusing the extent while its values (numpy arrays
made zero-copy over it) live. It holds a shared lock (an open-file-description lock,
``F_OFD_SETLK``) on the header's first byte from before it checks the header until the last
view of the object is gone; the store takes an exclusive lock on a whole extent before it
frees, spills or reuses it, and fails while any reader holds one. Locks cost a system call
and no message, and the kernel drops them when the process dies, so a crashed reader pins
nothing. The store invalidates the header while it holds the exclusive lock, so a reader
that locks the extent afterwards sees that its object is gone and asks the store where it
went (`LocateObject`). The store pins the extents it lends to transfers the same way
(`Arena.pins`, a descriptor of its own), so that a lent extent is neither spilled nor reused.

A reader's views are built on a small `ctypes` object over the mapping (a `_Pin`): every
memoryview, numpy array or slice made from them keeps it alive, and when the last one goes
its ``__del__`` drops the process's count of pins on that extent, releasing the lock at zero.

Choices, measured on a 2-vCPU VM (100 MB, medians): writing through a mapping whose page
tables are not yet filled takes 60 ms (a page fault per 4 KiB page), through warm ones
11-14 ms; ``madvise(MADV_POPULATE_WRITE)`` fills them in 22-38 ms, ``MAP_POPULATE`` on the
whole file at 11 ms per 100 MB. So a process maps the arena once and keeps the mapping, and
the first write to a region of it populates that region in one call; extents are reused
best-fit, so a loop of puts writes into the same warm pages. The file is sparse: the store
allocates its pages (``posix_fallocate``) as the used part grows, never later than the
extent is handed out, so a write can never meet a missing page (tmpfs answers that with
SIGBUS) and a full /dev/shm is an error at allocation.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import struct
import threading

from .memcopy import copy_into
from .serialization import Serialized, deserialize
from .shm import create_segment, open_fd, open_segment, segment_name, unlink_segment

__all__ = [
    "HEADER_SIZE",
    "Arena",
    "ArenaClient",
    "arena_name",
    "extent_size",
    "object_digest",
]

HEADER_SIZE = 64
_HEADER = struct.Struct("<4sHHQ16s")  # magic, version, flags, size, object id digest
_MAGIC = b"ACBK"
_VERSION = 1
_DEAD = bytes(_HEADER.size)
_REGION = 2 << 20  # a process remembers which parts of its mapping it populated, by this size
_LOCK = struct.Struct("hhqqi")  # struct flock (Linux's layout): type, whence, start, len, pid
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)


def arena_name(node_id: str) -> str:
    """The arena file of node `node_id` (a segment name: only the cluster can compute it)."""
    return segment_name(node_id, "arena")


def extent_size(size: int) -> int:
    """Bytes an object of `size` serialized bytes takes in the arena, header included."""
    return (HEADER_SIZE + size + 4095) & -4096


def object_digest(object_id: str) -> bytes:
    """The 16 bytes of the header that name `object_id`."""
    return hashlib.blake2b(object_id.encode(), digest_size=16).digest()


def _lock(fd: int, kind: int, start: int, length: int) -> bool:
    """Take (or with F_UNLCK drop) a lock on [start, start+length) without waiting; False if
    another open file description holds a conflicting one."""
    try:
        fcntl.fcntl(fd, _OFD_SETLK, _LOCK.pack(kind, os.SEEK_SET, start, length, 0))
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _header(object_id: str, size: int) -> bytes:
    return _HEADER.pack(_MAGIC, _VERSION, 0, size, object_digest(object_id))


class Arena:
    """The store's side: create the file, check and invalidate extents, pin the ones it serves
    (see the module's docstring)."""

    def __init__(self, node_id: str, capacity: int) -> None:
        self.name = arena_name(node_id)
        self.capacity = capacity
        self._segment = create_segment(self.name, capacity, reserve=False)
        try:
            self._fd = open_fd(self.name)  # the store's own open file description: its locks are exclusive
            #: the store's pins of extents it lends to transfers: locks of another description,
            #: so that its own exclusive locks see them as readers' pins
            self.pins = _PinCounts(open_fd(self.name))
        except BaseException:
            self._segment.close()
            unlink_segment(self.name)
            raise
        self.view = self._segment.view
        self.allocated_upto = 0  # pages below are allocated in the file

    def reserve(self, start: int, length: int) -> None:
        """Make sure the file's pages of [start, start+length) exist (OSError ENOSPC if
        /dev/shm has no room for them). The file's pages are allocated from its start up to
        the end of the highest extent ever handed out, and stay."""
        end = start + length
        if end > self.allocated_upto:
            os.posix_fallocate(self._fd, self.allocated_upto, end - self.allocated_upto)
            self.allocated_upto = end

    def populate(self, start: int, length: int, *, write: bool) -> None:
        """Fill the store's page tables for an extent it is about to write (a pull) or read (a
        transfer) in one call, instead of a fault per page."""
        self._segment.populate(start, length, write=write)

    def try_exclusive(self, start: int, length: int) -> bool:
        """Lock an extent for the store alone: False while any reader (or transfer) pins part of it."""
        return _lock(self._fd, fcntl.F_WRLCK, start, length)

    def release(self, start: int, length: int) -> None:
        """Drop the store's exclusive lock of an extent."""
        _lock(self._fd, fcntl.F_UNLCK, start, length)

    def write_header(self, start: int, object_id: str, size: int) -> None:
        """Seal an extent: its header now names `object_id` (readers may use it)."""
        self.view[start:start + _HEADER.size] = _header(object_id, size)

    def invalidate(self, start: int) -> None:
        """The extent no longer holds its object (called with it locked exclusively)."""
        self.view[start:start + _HEADER.size] = _DEAD

    def data(self, start: int, size: int) -> memoryview:
        """The object's bytes in the extent at `start` (writable: for the store's own pulls)."""
        return self.view[start + HEADER_SIZE:start + HEADER_SIZE + size]

    def close(self) -> None:
        """Unmap and remove the file (existing mappings of other processes stay valid)."""
        self._segment.close()
        self.pins.close()
        os.close(self._fd)
        unlink_segment(self.name)


class _PinCounts:
    """This process's pins per extent start: the OFD read lock is held while the count is > 0."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.counts: dict[int, int] = {}
        # Re-entrant: a pin collected by the garbage collector while this thread holds the
        # lock drops its count from inside it.
        self.lock = threading.RLock()

    def acquire(self, start: int) -> bool:
        with self.lock:
            count = self.counts.get(start, 0)
            if not count and not _lock(self.fd, fcntl.F_RDLCK, start, 1):
                return False
            self.counts[start] = count + 1
            return True

    def close(self) -> None:
        """Drop every pin (the descriptor, and the kernel drops its locks with it)."""
        with self.lock:
            fd, self.fd = self.fd, -1
            if fd >= 0:
                os.close(fd)

    def drop(self, start: int) -> None:
        with self.lock:
            count = self.counts.get(start, 0) - 1
            if count > 0:
                self.counts[start] = count
                return
            self.counts.pop(start, None)
            if self.fd >= 0:
                try:
                    _lock(self.fd, fcntl.F_UNLCK, start, 1)
                except OSError:  # closed at shutdown meanwhile: the lock went with it
                    pass


_pin_types: dict[int, type] = {}


def _pin_type(size: int) -> type:
    """A ctypes byte-array type of `size` whose instances drop their pin when collected."""
    cls = _pin_types.get(size)
    if cls is None:
        if len(_pin_types) > 256:
            _pin_types.clear()

        def __del__(self) -> None:
            pins, start = self._actorcore_pin
            pins.drop(start)

        cls = type("_Pin", (ctypes.c_char * size,), {"__del__": __del__})
        _pin_types[size] = cls
    return cls


class ArenaClient:
    """A process's mapping of its node's arena: write objects, read them zero-copy (see the
    module's docstring)."""

    def __init__(self, node_id: str) -> None:
        self.name = arena_name(node_id)
        self._segment = open_segment(self.name, writable=True)
        self.size = self._segment.size
        # A second open file description for the pins: the store's exclusive locks conflict
        # with them even where the store shares this process.
        self._pins = _PinCounts(open_fd(self.name))
        self._view = self._segment.view
        self._populated = bytearray(self.size // _REGION + 1)

    def _populate(self, start: int, end: int) -> None:
        """Fill this process's page tables for [start, end) in one call, the first time it
        writes there (regions of `_REGION` bytes wholly inside count as done)."""
        first, last = -(-start // _REGION), end // _REGION  # regions wholly inside
        if first < last and all(self._populated[first:last]):
            return
        self._segment.populate(start, end - start, write=True)
        if first < last:
            self._populated[first:last] = b"\x01" * (last - first)

    def write(self, start: int, object_id: str, serialized: Serialized) -> None:
        """Lay `serialized` out in the extent at `start` (allocated by the store for it) and
        seal it with its header."""
        size = serialized.total_size
        data_start = start + HEADER_SIZE
        self._populate(start, data_start + size)
        view = self._view
        serialized.write_into(view[data_start:data_start + size], copy=copy_into)
        view[start:start + _HEADER.size] = _header(object_id, size)

    def read(self, start: int, object_id: str, size: int):
        """The value of `object_id` if the extent at `start` holds it: ``(True, value)``; else
        ``(False, None)`` (the store moved it or is moving it: ask it where it is)."""
        if start < 0 or start + HEADER_SIZE + size > self.size:
            return False, None
        pins = self._pins
        if not pins.acquire(start):
            return False, None
        try:
            magic, _version, _flags, held, digest = _HEADER.unpack_from(self._view, start)
            if magic != _MAGIC or held != size or digest != object_digest(object_id):
                pins.drop(start)
                return False, None
            pin = _pin_type(size).from_buffer(self._view, start + HEADER_SIZE)
        except BaseException:
            pins.drop(start)
            raise
        pin._actorcore_pin = (pins, start)
        view = memoryview(pin).cast("B").toreadonly()
        del pin
        return True, deserialize(view)

    @staticmethod
    def read_spilled(path: str, size: int):
        """The value in spill file `path` (`size` bytes), mapped read-only: zero-copy through
        the page cache, alive as long as its values (the store may remove the file meanwhile:
        the mapping stays valid). FileNotFoundError if it is gone."""
        with open(path, "rb") as file:
            mapped = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        return deserialize(memoryview(mapped))

    def close(self) -> None:
        """Stop using the arena; values still alive keep their part of the mapping."""
        self._segment.close()
        self._pins.close()
