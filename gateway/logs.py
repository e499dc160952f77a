"""structlog setup: JSON lines off a TTY, a console renderer on one."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from gateway.config import LogSettings


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog once, at start, from the [log] section."""
    fmt = settings.format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    # orjson renders a request line several times faster than json.dumps; bytes go straight out.
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=orjson.dumps)
    )
    factory: Any = (
        structlog.PrintLoggerFactory(file=sys.stderr)
        if fmt == "console"
        else structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
