"""Logging for the supervisor package.

Every module logs through :func:`get_logger`, which returns
``structlog.get_logger("supervisor")`` once the application has configured structlog, so the
application decides levels, format and destination.

A library must stay quiet unless the application asks for its logs, but structlog's
unconfigured default prints every level to stdout. Until structlog is configured, the
supervisor therefore routes its records through the standard-library logger ``"supervisor"``:
silent below WARNING (Python's last-resort handler still shows warnings and errors on stderr,
so a supervisor bug is never swallowed silently), and ``logging.getLogger("supervisor")``
can be configured like any other library logger.

structlog itself is imported only when needed: by an application that configured it, or for a
record the ``"supervisor"`` logger would emit. A process whose supervisors log nothing does not
pay for importing it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class _QuietBridge:
    """The stdlib bridge, built on the first record ``logging.getLogger("supervisor")`` emits."""

    def __init__(self) -> None:
        self._stdlib = logging.getLogger("supervisor")
        self._bound: Any = None

    def _emit(self, method: str, level: int, event: str, fields: dict) -> None:
        if not self._stdlib.isEnabledFor(level):
            return
        if self._bound is None:
            import structlog

            self._bound = structlog.wrap_logger(
                self._stdlib,
                processors=[
                    structlog.stdlib.filter_by_level,
                    structlog.processors.format_exc_info,
                    structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True),
                ],
                wrapper_class=structlog.stdlib.BoundLogger,
            )
        getattr(self._bound, method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", logging.ERROR, event, fields)


_stdlib_fallback = _QuietBridge()


def get_logger() -> Any:
    """The supervisor's logger: structlog's when configured, else a quiet stdlib bridge."""
    # Another thread may be importing structlog right now (a partly initialized module): it
    # has not been configured yet then, whichever of its names exist so far.
    is_configured = getattr(sys.modules.get("structlog"), "is_configured", None)
    if is_configured is not None and is_configured():
        return sys.modules["structlog"].get_logger("supervisor")
    return _stdlib_fallback
