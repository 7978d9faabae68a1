"""Object (de)serialization with out-of-band buffers: pickle 5 for data, small objects inline,
large ones in shared memory read zero-copy (docs/architecture.md, "Objects: put and get").

`serialize(value)` pickles with protocol 5 and a ``buffer_callback``: the raw memory of
numpy arrays (and of any `pickle.PickleBuffer`) is kept *out of band* as memoryviews of
the original memory instead of being copied into the pickle stream. The result, a
`Serialized`, is laid out in one contiguous region by `write_into` (a writable memoryview,
e.g. a shared-memory mapping), `write_to_fd` (a file, e.g. a shm fd, with ``pwrite``) or
`to_bytes` (inline transfer). `deserialize(view)` reads that layout back; out-of-band
buffers are handed to `pickle.loads` as read-only slices of ``view``, so numpy arrays come
back read-only and zero-copy, backed by whatever backs ``view`` (and keeping it alive).

Layout (all integers little-endian)::

    0   magic b"ACOB" | u16 version | u16 flags (0) | u64 nbuffers | u64 inband_len   (24 bytes)
    24  nbuffers x (u64 offset, u64 length)    offsets from the start of the region
    ..  inband pickle stream
    ..  buffer 0, at a multiple of ALIGNMENT (64) from the region's start; zero padding before
    ..  buffer 1, ...

Choices:

- Plain `pickle` first (fastest); cloudpickle (same protocol, same ``buffer_callback``)
  when plain pickle fails (lambdas, closures, local classes) *or* when its stream refers
  to ``__main__`` (a class or function of the driver's script would be pickled by
  reference and could not be loaded by a worker; cloudpickle pickles those by value).
  Both failing raises `TypeError` naming the value's type and the pickling error.
- Large values are copied once, into their destination, never through the pickle stream:
  a top-level ``bytes``, ``bytearray`` or ``memoryview`` of `INLINE_THRESHOLD` or more goes
  out of band as it is (pickle keeps them in band; a memoryview comes back as ``bytes``, as
  in Ray), and a large top-level non-contiguous numpy array is pickled as an untouched empty
  array of its shape while its elements are gathered straight into the destination
  (`_Strided`). A small one is made contiguous first. Nested non-contiguous arrays are
  pickled in band by numpy: correct, one copy more. Object-dtype arrays are always in band.
- Out-of-band buffers keep their source alive: a `Serialized` references the arrays it was
  made from until it is dropped; do not mutate them before it has been written.

Measured (Linux VM, 2 vCPU, Python 3.11, numpy 2.4, best of several runs):

- small values (a dict of a few ints and strings): `serialize` + `to_bytes` costs about
  1 µs over ``pickle.dumps`` (1.7 vs 0.6 µs); `deserialize` about 1 µs over ``pickle.loads``
  (1.6 vs 0.8 µs). A 100-element float array: 8.0 vs 5.2 µs and 4.5 vs 3.4 µs.
- a 100 MB float64 array: `serialize` 0.01-0.1 ms (no copy of the data); `write_into` a
  warm bytearray 9 ms, one memcpy per buffer (~11 GB/s, as fast as a bare memoryview copy).
  Into the node's arena (warm pages, `memcopy.copy_into` with two threads) a `put` of it
  costs about one memcpy: see `arena`'s docstring.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = [
    "ALIGNMENT",
    "INLINE_THRESHOLD",
    "Serialized",
    "deserialize",
    "serialize",
]

PROTOCOL = 5
#: objects whose `Serialized.total_size` is below this travel inline.
INLINE_THRESHOLD = 100 * 1024
#: out-of-band buffers start at multiples of this from the region's start (a cache line;
#: mappings are page aligned, so numpy arrays read from shared memory are aligned too).
ALIGNMENT = 64

MAGIC = b"ACOB"
VERSION = 1
_HEADER = struct.Struct("<4sHHQQ")  # magic, version, flags, nbuffers, inband_len
_ENTRY = struct.Struct("<QQ")  # offset, length
_HEADER_SIZE = _HEADER.size
_ENTRY_SIZE = _ENTRY.size
_ZEROS = bytes(ALIGNMENT)

_dumps = pickle.dumps
_loads = pickle.loads
_cloud_dumps = cloudpickle.dumps


class Serialized:
    """A value pickled with its out-of-band buffers, ready to be laid out in one region.

    ``inband`` is the pickle stream, ``buffers`` the raw out-of-band memory (1-D, format
    ``"B"``, contiguous, referencing the original objects), ``total_size`` the size of the
    laid-out region (header + inband + aligned buffers).
    """

    __slots__ = ("inband", "buffers", "total_size", "_offsets")

    def __init__(self, inband: bytes, buffers: list[memoryview] | None = None) -> None:
        self.inband = inband
        if not buffers:
            self.buffers = []
            self._offsets = ()
            self.total_size = _HEADER_SIZE + len(inband)
            return
        self.buffers = buffers
        pos = _HEADER_SIZE + _ENTRY_SIZE * len(buffers) + len(inband)
        offsets = []
        for buf in buffers:
            pos = (pos + ALIGNMENT - 1) & -ALIGNMENT
            offsets.append(pos)
            pos += buf.nbytes
        self._offsets = offsets
        self.total_size = pos

    def __repr__(self) -> str:
        return (
            f"Serialized(total_size={self.total_size}, inband={len(self.inband)}, "
            f"buffers={[b.nbytes for b in self.buffers]})"
        )

    def _head(self) -> bytes:
        """Header, buffer table and inband stream: the region's first bytes."""
        buffers = self.buffers
        head = _HEADER.pack(MAGIC, VERSION, 0, len(buffers), len(self.inband))
        if buffers:
            head += b"".join(
                [_ENTRY.pack(off, buf.nbytes) for off, buf in zip(self._offsets, buffers, strict=False)]
            )
        return head + self.inband

    def write_into(self, view: memoryview, copy: Callable[[memoryview, memoryview], None] | None = None) -> int:
        """Lay the value out at the start of ``view`` (writable, at least `total_size` bytes).

        One memcpy per out-of-band buffer (``copy(destination, buffer)`` if given, e.g.
        `memcopy.copy_into`); padding is zeroed. Returns `total_size`.
        """
        if not isinstance(view, memoryview):
            view = memoryview(view)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = self.total_size
        if view.nbytes < total:
            raise ValueError(f"target of {view.nbytes} bytes is too small for {total} bytes")
        head = self._head()
        pos = len(head)
        view[:pos] = head
        for off, buf in zip(self._offsets, self.buffers, strict=False):
            view[pos:off] = _ZEROS[: off - pos]
            end = off + buf.nbytes
            if type(buf) is _Strided:
                buf.copy_into(view[off:end])
            elif copy is None:
                view[off:end] = buf
            else:
                copy(view[off:end], buf)
            pos = end
        return total

    def write_to_fd(self, fd: int, offset: int = 0) -> int:
        """Lay the value out in file ``fd`` at ``offset`` with ``os.pwrite`` (one kernel copy
        per buffer; padding is left as a hole, which reads as zeros). Returns `total_size`.

        Errors (e.g. ``ENOSPC``) propagate as `OSError`; the file may then be partly written.
        """
        _pwrite_all(fd, memoryview(self._head()), offset)
        for off, buf in zip(self._offsets, self.buffers, strict=False):
            _pwrite_all(fd, buf.__buffer__(0) if type(buf) is _Strided else buf, offset + off)
        return self.total_size

    def to_bytes(self) -> bytes:
        """The same layout as `write_into`, as one bytes object (for inline transfer)."""
        if not self.buffers:
            return _HEADER.pack(MAGIC, VERSION, 0, 0, len(self.inband)) + self.inband
        head = self._head()
        parts: list[Any] = [head]
        pos = len(head)
        for off, buf in zip(self._offsets, self.buffers, strict=False):
            parts.append(_ZEROS[: off - pos])
            parts.append(buf.__buffer__(0) if type(buf) is _Strided else buf)
            pos = off + buf.nbytes
        return b"".join(parts)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done, size = 0, data.nbytes
    while done < size:
        done += os.pwrite(fd, data[done:], offset + done)


class _RawBytes:
    """A top-level ``bytes``, ``bytearray`` or ``memoryview`` pickled with its memory out of band
    (pickle keeps those in band: they would be copied into the stream, then out of it)."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: type, value: Any) -> None:
        self.kind = kind
        self.value = value

    def __reduce_ex__(self, protocol: int):
        return _RAW_LOADERS[self.kind], (pickle.PickleBuffer(self.value),)


#: How each comes back: a memoryview as ``bytes``, as in Ray (a view of a value that is gone).
_RAW_LOADERS: dict[type, Callable] = {bytes: bytes, bytearray: bytearray, memoryview: bytes}


class _Strided:
    """The out-of-band buffer of a large top-level non-contiguous numpy array: its elements are
    gathered straight into the destination (one copy), not first into a contiguous array."""

    __slots__ = ("array", "nbytes")

    def __init__(self, array: Any) -> None:
        self.array = array
        self.nbytes = array.nbytes

    def copy_into(self, destination: memoryview) -> None:
        np = sys.modules["numpy"]
        target = np.frombuffer(destination, dtype=self.array.dtype).reshape(self.array.shape)
        np.copyto(target, self.array)

    def __buffer__(self, flags: int) -> memoryview:  # (b"".join, os.pwrite: a contiguous copy)
        return memoryview(sys.modules["numpy"].ascontiguousarray(self.array)).cast("B")


def _top_level(value: Any) -> tuple[Any, Any]:
    """``(what to pickle, a non-contiguous array whose buffer it stands in for, or None)``.

    A large top-level non-contiguous numpy array is pickled as an untouched empty array of its
    shape (its pages are never written), and its elements are copied into place when the
    value is laid out; a small one becomes contiguous (so it still goes out of band). A
    top-level bytes-like value of `INLINE_THRESHOLD` or more goes out of band as it is.
    """
    kind = type(value)
    if kind in _RAW_LOADERS:
        if kind is memoryview:
            if not value.contiguous:
                return value.tobytes(), None
            if value.format != "B" or value.ndim != 1:
                value = value.cast("B")
        if value.nbytes >= INLINE_THRESHOLD if kind is memoryview else len(value) >= INLINE_THRESHOLD:
            return _RawBytes(kind, value), None
        return (value.tobytes() if kind is memoryview else value), None
    np = sys.modules.get("numpy")
    if np is not None and kind is np.ndarray:
        flags = value.flags
        if not (flags.c_contiguous or flags.f_contiguous) and not value.dtype.hasobject:
            if value.nbytes >= INLINE_THRESHOLD:
                return np.empty(value.shape, value.dtype), value
            return np.ascontiguousarray(value), None
    return value, None


def serialize(value: Any) -> Serialized:
    """Pickle ``value`` (protocol 5, out-of-band buffers; cloudpickle as the fallback).

    Raises `TypeError` naming the value's type and the pickling error when neither plain
    pickle nor cloudpickle can handle it.
    """
    value, strided = _top_level(value)
    raws: list[memoryview] = []

    def keep(buf: pickle.PickleBuffer) -> None:
        raws.append(buf.raw())

    try:
        inband = _dumps(value, PROTOCOL, buffer_callback=keep)
        if b"__main__" not in inband:
            if strided is not None:
                raws[0] = _Strided(strided)
            return Serialized(inband, raws)
    except Exception:  # noqa: BLE001 - whatever pickle refuses, cloudpickle tries
        pass
    raws.clear()
    try:
        inband = _cloud_dumps(value, PROTOCOL, buffer_callback=keep)
    except Exception as exc:
        cls = type(value)
        raise TypeError(
            f"cannot serialize a value of type {cls.__module__}.{cls.__qualname__} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return Serialized(inband, raws)


def deserialize(view: memoryview | bytes | bytearray) -> Any:
    """Read a value laid out by `Serialized.write_into` / `to_bytes`.

    Out-of-band buffers are passed as read-only slices of ``view``: numpy arrays come back
    read-only and zero-copy, and keep the memory behind ``view`` alive while they live.
    Raises `ValueError` when ``view`` does not hold that layout.
    """
    if type(view) is not memoryview:
        view = memoryview(view)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    size = view.nbytes
    if size < _HEADER_SIZE:
        raise ValueError(f"not a serialized object: {size} bytes is shorter than the header")
    magic, version, _flags, nbuffers, inband_len = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise ValueError(f"not a serialized object: bad magic {bytes(magic)!r}")
    if version != VERSION:
        raise ValueError(f"serialized object of version {version}; this reader knows {VERSION}")
    start = _HEADER_SIZE + _ENTRY_SIZE * nbuffers
    end = start + inband_len
    if end > size:
        raise ValueError(f"truncated serialized object: needs {end} bytes, has {size}")
    if not nbuffers:
        return _loads(view[start:end])
    if not view.readonly:
        view = view.toreadonly()
    buffers = []
    for off, length in _ENTRY.iter_unpack(view[_HEADER_SIZE:start]):
        if off < end or off + length > size:
            raise ValueError(
                f"corrupt serialized object: buffer [{off}, {off + length}) outside [{end}, {size})"
            )
        buffers.append(view[off : off + length])
    return _loads(view[start:end], buffers=buffers)
