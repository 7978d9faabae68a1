"""The process-wide runtime: the CoreWorker of this process, if it has one.

A driver sets it in `init()` and clears it in `shutdown()`; a worker process sets it at start.
The API modules read it here. The first use without `init()` starts one with defaults, as in
Ray: `actorcore.api` registers `init` as the starter when it is imported.

A leaf: it imports nothing of actorcore, so every layer may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["at_process_end", "current", "process_ending", "require", "set_current", "set_starter"]

_core: Any = None
_starter: Callable[[], Any] | None = None
_at_end: list[Callable[[], Any]] = []


def set_current(core: Any) -> None:
    """Make `core` (a CoreWorker, or None) this process's runtime."""
    global _core
    _core = core


def current() -> Any:
    """This process's CoreWorker, or None if there is none (before `init()`, after `shutdown()`)."""
    return _core


def set_starter(starter: Callable[[], Any]) -> None:
    """Register the function `require` calls to start a runtime with defaults (`init`)."""
    global _starter
    _starter = starter


def require() -> Any:
    """This process's CoreWorker; started with defaults (the registered starter) if there is none.

    Raises RuntimeError if there is none and no starter is registered.
    """
    if _core is None:
        if _starter is None:
            raise RuntimeError("actorcore is not initialized: call actorcore.init() first")
        _starter()
    return _core


def at_process_end(hook: Callable[[], Any]) -> None:
    """Run `hook` when this process's runtime ends: a worker told to stop (which ends with
    ``os._exit``, so ``atexit`` would not run), or a driver at interpreter exit."""
    if hook not in _at_end:
        _at_end.append(hook)


def process_ending() -> None:
    """Run the `at_process_end` hooks once (errors are theirs: a hook must not raise)."""
    hooks, _at_end[:] = list(_at_end), []
    for hook in hooks:
        hook()
