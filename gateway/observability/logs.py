"""structlog setup: JSON lines off a TTY (written in batches), a console renderer on one."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

import orjson
import structlog

from gateway.config import LogSettings

_sink: LineSink | None = None


class LineSink:
    """A file for structlog's BytesLogger that writes lines in batches, one syscall per batch.

    A write per request line costs more than the rest of a cache hit; a daemon thread writes
    what has gathered every `delay_s`, and at once past `max_bytes`. `drain()` writes now; it runs
    at shutdown and at exit, so a graceful stop loses nothing (a kill -9 loses at most `delay_s`).
    """

    def __init__(self, fd: int, delay_s: float, max_bytes: int = 1 << 16) -> None:
        self._fd = fd
        self._delay = delay_s
        self._max = max_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="log-sink", daemon=True).start()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._lines.append(data)
            self._size += len(data)
            full = self._size >= self._max
        if full:
            self.drain()

    def flush(self) -> None:
        """BytesLogger flushes after every line; batching is the point, so this waits for drain."""

    def drain(self) -> None:
        with self._lock:
            lines, self._lines, self._size = self._lines, [], 0
            if not lines:
                return
            data = memoryview(b"".join(lines))
            while data:  # still under the lock: batches never interleave
                written = os.write(self._fd, data)
                data = data[written:]

    def _run(self) -> None:
        while not self._wake.wait(self._delay):
            self.drain()


def flush_logs() -> None:
    """Write any batched log lines now (shutdown)."""
    if _sink is not None:
        _sink.drain()


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog once, at start, from the [log] section."""
    global _sink
    fmt = settings.format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    # orjson renders a request line several times faster than json.dumps; bytes go straight out.
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=orjson.dumps)
    )
    factory: Any
    if fmt == "console":
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    elif settings.buffer_ms > 0:
        sys.stderr.flush()
        if _sink is None:
            _sink = LineSink(sys.stderr.fileno(), settings.buffer_ms / 1000)
            atexit.register(_sink.drain)
        factory = structlog.BytesLoggerFactory(file=_sink)  # type: ignore[arg-type]  # write+flush suffice
    else:
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
