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
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

_stdlib_fallback: Any = structlog.wrap_logger(
    logging.getLogger("supervisor"),
    processors=[
        structlog.stdlib.filter_by_level,
        structlog.processors.format_exc_info,
        structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True),
    ],
    wrapper_class=structlog.stdlib.BoundLogger,
)


def get_logger() -> Any:
    """The supervisor's logger: structlog's when configured, else a quiet stdlib bridge."""
    if structlog.is_configured():
        return structlog.get_logger("supervisor")
    return _stdlib_fallback
