"""Library logging: structlog over the standard `logging` module, quiet by default.

Loggers are bound to stdlib loggers under the `actorcore` name, so nothing below WARNING is
shown unless the application configures logging (`logging.basicConfig(level=...)` or
`ACTORCORE_LOG_LEVEL=debug`), and an application's own structlog configuration is untouched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from .env import LOG_LEVEL_ENV

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


_PROCESSORS = [
    _capture,
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.format_exc_info,
    structlog.dev.ConsoleRenderer(colors=False),
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The structlog logger of module ``name``, on top of the stdlib logger of that name."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_from_env() -> None:
    """Honour ACTORCORE_LOG_LEVEL (e.g. "debug") for processes we start ourselves."""
    level = os.environ.get(LOG_LEVEL_ENV)
    if level:
        logging.basicConfig(level=level.upper(), format="%(message)s")
