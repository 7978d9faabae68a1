"""Progress of the CLI's long operations (docs/architecture.md, "Progress bars"): `waiting`
shows, on a terminal only, what the command waits for with the time spent (and a count when it
has one), redrawn a few times a second, and erases it when done. On a pipe or a file it shows
nothing, so scripts and logs see only the command's own lines.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO

__all__ = ["REDRAW_INTERVAL", "waiting"]

REDRAW_INTERVAL = 0.2  # seconds between redraws


@contextlib.contextmanager
def waiting(what: str, *, count: Callable[[], tuple[int, int]] | None = None,
            file: IO[str] | None = None, enabled: bool = True) -> Iterator[None]:
    """Show ``what`` (e.g. "waiting for the node to register") and the time spent while the
    block runs; ``count()`` -> (done, total) makes it a bar. Only if `enabled` and `file`
    (default stderr) is a terminal."""
    file = file or sys.stderr
    if not (enabled and hasattr(file, "isatty") and file.isatty()):
        yield
        return
    from tqdm import tqdm

    total = count()[1] if count is not None else None
    layout = "{desc}: {n}/{total} {bar} [{elapsed}]" if count is not None else "{desc} [{elapsed}]"
    bar = tqdm(desc=what, total=total, file=file, leave=False, bar_format=layout, dynamic_ncols=True)
    done = threading.Event()

    def redraw() -> None:
        while not done.wait(REDRAW_INTERVAL):
            if count is not None:
                bar.n = count()[0]
            bar.refresh()

    thread = threading.Thread(target=redraw, name="cli-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()
