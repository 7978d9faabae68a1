"""Which of a node's GPUs (by device id) each lease holds, and how much of each is free.

The Scheduler keeps one `GpuDevices`; a lease of a shape with GPUs gets its devices from it
when granted and gives them back when returned (docs/architecture.md, "GPUs and memory"). As
in Ray, a request of one GPU or more takes that many whole devices (the free ones with the
lowest ids); a fraction is packed onto the device with the least room that still holds it
(best fit), so fractions share a device and never make one exceed 1.0. Quantities count in
units of 1/10000, as Ray's do, so fractions add up exactly.
"""

from __future__ import annotations

import math

__all__ = ["GpuAssignment", "GpuDevices"]

_UNITS = 10_000  # one device

#: (device index, units of it), one pair per device a lease holds
GpuAssignment = tuple[tuple[int, int], ...]


class GpuDevices:
    """The GPUs ``ids`` of a node whose total is ``total`` (the last device holds the fraction
    of a total that is not whole, e.g. 2.5 GPUs: 1, 1 and 0.5)."""

    def __init__(self, ids: list[str], total: float) -> None:
        self.ids = list(ids)
        whole = int(total)
        capacities = [_UNITS] * min(whole, len(self.ids))
        if len(capacities) < len(self.ids):
            capacities.append(round((total - whole) * _UNITS))
        self.free = capacities

    def fits(self, quantity: float) -> bool:
        """Whether a request of `quantity` GPUs could get its devices now."""
        return self._choose(quantity) is not None

    def assign(self, quantity: float) -> GpuAssignment:
        """Take devices for `quantity` GPUs (nothing for 0); call only when `fits`."""
        chosen = self._choose(quantity)
        if not chosen:
            return ()
        for index, units in chosen:
            self.free[index] -= units
        return chosen

    def release(self, assignment: GpuAssignment) -> None:
        """Give back what `assign` returned."""
        for index, units in assignment:
            self.free[index] += units

    def ids_of(self, assignment: GpuAssignment) -> tuple[str, ...]:
        """The device ids of an assignment, in device order."""
        return tuple(self.ids[index] for index, _ in assignment)

    def _choose(self, quantity: float) -> GpuAssignment | None:
        units = round(quantity * _UNITS)
        if units <= 0:
            return ()
        if units >= _UNITS:
            count = math.ceil(units / _UNITS)
            whole = [index for index, free in enumerate(self.free) if free >= _UNITS][:count]
            return tuple((index, _UNITS) for index in whole) if len(whole) == count else None
        best = None
        for index, free in enumerate(self.free):
            if free >= units and (best is None or free < self.free[best]):
                best = index
        return None if best is None else ((best, units),)
