"""Extents of a node's shared-memory arena: which byte ranges are free, handed out best-fit
(docs/architecture.md, "The node's object store").

`ExtentAllocator` knows nothing of objects or memory: it hands out page-aligned ranges of
``[0, capacity)`` and takes them back, merging a returned range with free neighbours so that
the arena does not crumble into pieces too small to use.

Choices:

- Best fit, lowest offset first among equals: a freed range is reused by the next object of
  about its size (the object that just died in a loop of puts is replaced by the next one, in
  pages that are already warm), and the arena fills from its start, so the memory it touches
  stays as small as the objects allow.
- Free ranges live in a list sorted by offset (neighbours found by bisection) and a sorted
  list of ``(length, offset)`` for best fit. Both cost O(log n) to search and O(n) to update;
  objects here are 100 KiB or larger, so n stays in the thousands at most.
"""

from __future__ import annotations

import bisect

__all__ = ["PAGE", "ExtentAllocator"]

PAGE = 4096


def _round_up(size: int) -> int:
    return (size + PAGE - 1) & -PAGE


class ExtentAllocator:
    """Page-aligned ranges of ``[0, capacity)``: `allocate` and `free` (see the module's docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < PAGE:
            raise ValueError(f"an arena must hold at least one page ({PAGE} bytes), got {capacity}")
        self.capacity = capacity - capacity % PAGE
        self._starts: list[int] = [0]  # free ranges by offset
        self._lengths: dict[int, int] = {0: self.capacity}
        self._by_size: list[tuple[int, int]] = [(self.capacity, 0)]
        self.free_bytes = self.capacity

    @staticmethod
    def extent_size(size: int) -> int:
        """How many bytes a request for `size` bytes takes (whole pages)."""
        return _round_up(size)

    def largest_free(self) -> int:
        """The largest range `allocate` could hand out now."""
        return self._by_size[-1][0] if self._by_size else 0

    def allocate(self, size: int) -> int | None:
        """The offset of a free range of ``extent_size(size)`` bytes, now in use; None if no
        free range is that large."""
        if size <= 0:
            raise ValueError(f"cannot allocate {size} bytes")
        need = _round_up(size)
        index = bisect.bisect_left(self._by_size, (need, -1))
        if index == len(self._by_size):
            return None
        length, start = self._by_size[index]
        self._remove(start, length)
        if length > need:
            self._add(start + need, length - need)
        self.free_bytes -= need
        return start

    def free(self, start: int, size: int) -> None:
        """Give back the range `allocate` returned for `size` bytes at `start`."""
        length = _round_up(size)
        if start % PAGE or start < 0 or start + length > self.capacity:
            raise ValueError(f"range [{start}, {start + length}) is not an extent of this arena")
        index = bisect.bisect_left(self._starts, start)
        if index < len(self._starts) and self._starts[index] < start + length:
            raise ValueError(f"range [{start}, {start + length}) is already free")
        if index and self._starts[index - 1] + self._lengths[self._starts[index - 1]] > start:
            raise ValueError(f"range [{start}, {start + length}) is already free")
        self.free_bytes += length
        if index < len(self._starts) and self._starts[index] == start + length:
            following = self._starts[index]
            length += self._lengths[following]
            self._remove(following, self._lengths[following])
        if index:
            previous = self._starts[index - 1]
            if previous + self._lengths[previous] == start:
                start, length = previous, length + self._lengths[previous]
                self._remove(previous, self._lengths[previous])
        self._add(start, length)

    def free_ranges(self) -> list[tuple[int, int]]:
        """``(offset, length)`` of every free range, by offset."""
        return [(start, self._lengths[start]) for start in self._starts]

    def _add(self, start: int, length: int) -> None:
        bisect.insort(self._starts, start)
        self._lengths[start] = length
        bisect.insort(self._by_size, (length, start))

    def _remove(self, start: int, length: int) -> None:
        del self._starts[bisect.bisect_left(self._starts, start)]
        del self._lengths[start]
        del self._by_size[bisect.bisect_left(self._by_size, (length, start))]
