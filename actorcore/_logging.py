"""Library logging: structlog over the standard `logging` module, quiet by default.

Loggers are bound to stdlib loggers under the `actorcore` name, so nothing below WARNING is
shown unless the application configures logging (`logging.basicConfig(level=...)` or
`ACTORCORE_LOG_LEVEL=debug`), and an application's own structlog configuration is untouched.

structlog is imported on the first entry that its stdlib logger would emit (or that
`capture_logs` collects): importing it (and rich, which it loads where installed) costs tens
of milliseconds that a node, worker or driver process which logs nothing does not pay.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .env import LOG_LEVEL_ENV

__all__ = ["capture_logs", "configure_from_env", "get_logger"]

_sinks: list[list[dict]] = []


def _capture(logger, method_name: str, event_dict: dict) -> dict:
    if _sinks:
        level = "error" if method_name == "exception" else method_name
        entry = {**event_dict, "log_level": level}
        for sink in _sinks:
            sink.append(entry)
    return event_dict


@contextmanager
def capture_logs() -> Iterator[list[dict]]:
    """Collect every actorcore log entry (any level) as event dicts with a `log_level` key."""
    sink: list[dict] = []
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


def _structlog_logger(stdlib_logger: logging.Logger) -> Any:
    import structlog

    return structlog.wrap_logger(
        stdlib_logger,
        processors=[
            _capture,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class Logger:
    """A module's logger: structlog's stdlib BoundLogger, made when an entry first needs it."""

    __slots__ = ("_bound", "_stdlib")

    def __init__(self, name: str) -> None:
        self._stdlib = logging.getLogger(name)
        self._bound: Any = None

    def _emit(self, method: str, level: int, event: str, fields: dict) -> None:
        if _sinks or self._stdlib.isEnabledFor(level):
            if self._bound is None:
                self._bound = _structlog_logger(self._stdlib)
            getattr(self._bound, method)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        """Log `event` with `fields` at DEBUG."""
        self._emit("debug", logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log `event` with `fields` at INFO."""
        self._emit("info", logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log `event` with `fields` at WARNING."""
        self._emit("warning", logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log `event` with `fields` at ERROR."""
        self._emit("error", logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log `event` with `fields` and the exception being handled, at ERROR."""
        self._emit("exception", logging.ERROR, event, fields)


def get_logger(name: str) -> Logger:
    """The logger of module ``name``, on top of the stdlib logger of that name."""
    return Logger(name)


def configure_from_env() -> None:
    """Honour ACTORCORE_LOG_LEVEL (e.g. "debug") for processes we start ourselves."""
    level = os.environ.get(LOG_LEVEL_ENV)
    if level:
        logging.basicConfig(level=level.upper(), format="%(message)s")
