"""Progress bars for tasks, actors and the driver (`ray.experimental.tqdm_ray`'s role;
docs/architecture.md, "Progress bars").

- `tqdm`: a bar usable anywhere, with the common subset of ``tqdm.tqdm``'s interface
  (``update``, ``set_description``, ``n``, ``total``, ``close``, iteration, ``with``). Inside a
  task or an actor it prints its state, at most every ``flush_interval_s`` seconds, as one
  line of the worker's output; the driver's terminal shows one bar per such bar
  (`actorcore.progress_bars`), below each other, instead of the lines. In the driver it draws
  the bar itself, in the same place.
- `as_completed(refs)` and `get(refs)`: the driver waits for a list of refs (with `wait`)
  under a bar that counts the ones ready.

Bars reach the driver with the workers' output, so not with ``init(log_to_driver=False)``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

from tqdm import tqdm as _terminal_bar

from .. import api, runtime
from ..exceptions import GetTimeoutError
from ..object_ref import ObjectRef
from ..progress_bars import board, encode

__all__ = ["as_completed", "get", "tqdm"]


class tqdm:
    """A progress bar whose updates show on the driver's terminal (see the module docstring)."""

    DEFAULT_FLUSH_INTERVAL_SECONDS = 0.5

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None, total: int | None = None,
                 unit: str | None = None, position: int | None = None,
                 flush_interval_s: float | None = None) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        if flush_interval_s is not None and not flush_interval_s >= 0:
            raise ValueError(f"tqdm(flush_interval_s={flush_interval_s!r}): give seconds >= 0")
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._unit = unit or "it"
        self._position = position  # accepted for Ray's sake: the driver places the bars
        self._n = 0
        self._closed = False
        self._uuid = uuid.uuid4().hex
        self._interval = self.DEFAULT_FLUSH_INTERVAL_SECONDS if flush_interval_s is None else flush_interval_s
        self._last_flush = 0.0
        core = runtime.current()
        self._in_worker = core is not None and not core.is_driver

    @property
    def n(self) -> int:
        """How many steps are done."""
        return self._n

    @n.setter
    def n(self, n: int) -> None:
        self._n = n

    @property
    def total(self) -> int | None:
        """How many steps there are (None: unknown)."""
        return self._total

    @total.setter
    def total(self, total: int | None) -> None:
        self._total = total

    def update(self, n: int = 1) -> None:
        """Count `n` more steps done."""
        self._n += n
        self._report()

    def set_description(self, desc: str) -> None:
        """Change the text before the bar."""
        self._desc = desc
        self._report()

    def refresh(self) -> None:
        """Show the current state now (within the flush interval)."""
        self._report()

    def close(self) -> None:
        """End the bar: its final state is shown at once. Idempotent."""
        if not self._closed:
            self._closed = True
            self._report(force=True)

    def __iter__(self) -> Iterator:
        if self._iterable is None:
            raise ValueError("tqdm(): iterating needs an iterable: tqdm(iterable, ...)")
        for item in self._iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> tqdm:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < self._interval:
            return
        self._last_flush = now
        state = {"uuid": self._uuid, "desc": self._desc, "n": self._n, "total": self._total, "unit": self._unit,
                 "pid": os.getpid() if self._in_worker else None, "closed": self._closed}
        if self._in_worker:
            print(encode(state), flush=True)
        else:
            board().update(state)


def as_completed(refs: Sequence[ObjectRef], *, desc: str | None = None, timeout: float | None = None,
                 file: IO[str] | None = None) -> Iterator[ObjectRef]:
    """Yield each of `refs` once it is ready, in the order they become ready, while a bar on
    the driver's terminal (stderr, or `file`) counts them. Raises `GetTimeoutError` if
    `timeout` seconds pass before all are ready."""
    pending = list(refs)
    deadline = None if timeout is None else time.monotonic() + timeout
    with _terminal_bar(total=len(pending), desc=desc, unit="ref", file=file or sys.stderr) as bar:
        while pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, pending = api.wait(pending, num_returns=1, timeout=left)
            if not ready:
                raise GetTimeoutError(f"{len(pending)} of {len(refs)} refs were not ready within {timeout} s")
            if pending:  # whatever else is ready too, in one call
                more, pending = api.wait(pending, num_returns=len(pending), timeout=0)
                ready += more
            bar.update(len(ready))
            yield from ready


def get(refs: Sequence[ObjectRef], *, desc: str | None = None, timeout: float | None = None,
        file: IO[str] | None = None) -> list:
    """``actorcore.get(refs)`` (the values in the order of `refs`) with a bar that counts the
    refs ready meanwhile; `timeout` as for `as_completed`."""
    refs = list(refs)
    for _ in as_completed(refs, desc=desc, timeout=timeout, file=file):
        pass
    return api.get(refs)
