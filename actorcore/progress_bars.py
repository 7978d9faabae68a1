"""The driver's side of progress bars from tasks and actors (`actorcore.util.tqdm`;
docs/architecture.md, "Progress bars").

A bar in a worker process reports its state as one line of its stdout: `MAGIC` followed by the
state as JSON (`encode`). Worker output reaches the driver's `LogSink` (actorcore/connection.py),
which hands such lines to `BarBoard.take` instead of printing them: the board keeps one
`tqdm.tqdm` bar on the driver's terminal per bar anywhere in the cluster (by its uuid), placed
by tqdm below each other, and closes it when the worker's bar closes. Other output is printed
through `BarBoard.printing`, which clears the bars for the time of the write and draws them
again below it. A bar made in the driver updates the board directly.

Nothing here touches the task path: a line costs one ``startswith`` in the sink.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["MAGIC", "BarBoard", "board", "encode"]

#: What starts a worker's output line that carries a bar's state.
MAGIC = "__actorcore_progress__ "


def encode(state: dict[str, Any]) -> str:
    """The output line (without its newline) that carries `state` to the driver."""
    return MAGIC + json.dumps(state, separators=(",", ":"))


class BarBoard:
    """The driver's bars, one per reporting bar (see the module docstring)."""

    def __init__(self, file: IO[str] | None = None) -> None:
        self._file = file
        self._bars: dict[str, Any] = {}
        #: how many bars have closed (their final state shown)
        self.finished = 0
        self._lock = threading.Lock()  # bars are updated from the sink's loop and the user's thread

    def take(self, lines: list[str]) -> list[str]:
        """Apply the bar states among `lines`; return the other lines, to be printed."""
        if not any(line.startswith(MAGIC) for line in lines):
            return lines
        rest = []
        for line in lines:
            if not line.startswith(MAGIC):
                rest.append(line)
                continue
            try:
                state = json.loads(line[len(MAGIC):])
            except ValueError:
                rest.append(line)  # a line cut in two: show it rather than lose it
                continue
            self.update(state)
        return rest

    def update(self, state: dict[str, Any]) -> None:
        """Show `state` (``uuid``, ``desc``, ``n``, ``total``, ``unit``, ``pid``, ``closed``)."""
        import tqdm

        key = str(state.get("uuid"))
        with self._lock:
            bar = self._bars.get(key)
            if bar is None:
                if state.get("closed") and state.get("n", 0) == 0 and not state.get("total"):
                    return
                bar = self._bars[key] = tqdm.tqdm(total=state.get("total"), unit=state.get("unit") or "it",
                                                  file=self._file or sys.stderr, dynamic_ncols=True)
            label = state.get("desc") or ""
            if state.get("pid") is not None:
                label = f"{label} (pid={state['pid']})".lstrip()
            if bar.desc != label:
                bar.set_description_str(label, refresh=False)
            if state.get("total") != bar.total:
                bar.total = state.get("total")
            bar.n = int(state.get("n") or 0)
            bar.refresh()
            if state.get("closed"):
                bar.close()
                del self._bars[key]
                self.finished += 1

    @contextlib.contextmanager
    def printing(self, file: IO[str]) -> Iterator[None]:
        """Write other output to `file` inside this block without breaking the bars."""
        if not self._bars:
            yield
            return
        import tqdm

        with self._lock, tqdm.tqdm.external_write_mode(file=file):
            yield

    def close(self) -> None:
        """Close every bar (the driver is shutting down)."""
        with self._lock:
            bars, self._bars = list(self._bars.values()), {}
        for bar in bars:
            bar.close()


_board: BarBoard | None = None
_board_lock = threading.Lock()


def board() -> BarBoard:
    """This process's board (made on first use)."""
    global _board
    with _board_lock:
        if _board is None:
            _board = BarBoard()
        return _board
