"""Library logging: structlog over the standard `logging` module, quiet by default.

Loggers are bound to stdlib loggers under the `actorcore` name, so nothing below WARNING is
shown unless the application configures logging (`logging.basicConfig(level=...)` or
`ACTORCORE_LOG_LEVEL=debug`), and an application's own structlog configuration is untouched.
"""

from __future__ import annotations

import logging
import os

import structlog

_PROCESSORS = [
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.format_exc_info,
    structlog.dev.ConsoleRenderer(colors=False),
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_from_env() -> None:
    """Honour ACTORCORE_LOG_LEVEL (e.g. "debug") for processes we start ourselves."""
    level = os.environ.get("ACTORCORE_LOG_LEVEL")
    if level:
        logging.basicConfig(level=level.upper(), format="%(message)s")
