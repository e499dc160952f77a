"""structlog setup: JSON lines off a TTY (written in batches), a console renderer on one."""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import sys
import threading
import time
import weakref
from typing import Any

import orjson
import structlog

from gateway.config import LogSettings

_sink: LineSink | None = None
# The JSON pipeline configure_logging installed and the logger its lines go to: write_event runs
# it without structlog's per-call layers. None under the console renderer.
_json_pipeline: tuple[Any, ...] | None = None
_json_logger: structlog.BytesLogger | None = None
# Levels add_log_level writes as they are named ("warn" and "exception" it renames).
_PLAIN_LEVELS = frozenset(("debug", "info", "warning", "error", "critical"))
_SINKS: weakref.WeakSet[LineSink] = weakref.WeakSet()
_fork_hook = False


class LineSink:
    """A file for structlog's BytesLogger that writes lines in batches, one syscall per batch.

    A write per request line costs more than the rest of a cache hit; a daemon thread writes
    what has gathered every `delay_s`, and at once past `max_bytes`. `drain()` writes now; it runs
    at shutdown and at exit, so a graceful stop loses nothing (a kill -9 loses at most `delay_s`).
    The thread belongs to the process that writes: it starts on the first line, and a forked
    child (granian's workers) starts its own instead of inheriting the parent's dead one.
    """

    def __init__(self, fd: int, delay_s: float, max_bytes: int = 1 << 16) -> None:
        self._fd = fd
        self._delay = delay_s
        self._max = max_bytes
        self._reset()
        _watch_forks(self)

    def _reset(self) -> None:
        """A fresh state for this process: no lines, free locks, no flush thread yet."""
        self._lines: list[bytes] = []
        self._size = 0
        self._lock = threading.Lock()  # guards the buffer; held for an append or a swap only
        self._write_lock = threading.Lock()  # one batch on the fd at a time, in swap order
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        """In a forked child: the parent's lines are the parent's to write, its thread is gone."""
        self._reset()

    def write(self, data: bytes) -> None:
        thread = None
        with self._lock:
            self._lines.append(data)
            self._size += len(data)
            full = self._size >= self._max
            if self._thread is None:
                self._thread = thread = threading.Thread(
                    target=self._run, name="log-sink", daemon=True
                )
        if thread is not None:
            thread.start()
        if full:  # the one time a writer waits for the fd: max_bytes have piled up
            self.drain()

    def flush(self) -> None:
        """BytesLogger flushes after every line; batching is the point, so this waits for drain."""

    def drain(self) -> None:
        """Write every gathered line now; `write` waits only for the swap, not for the fd."""
        with self._write_lock:  # batches leave in the order they were swapped out, whole
            with self._lock:
                lines, self._lines, self._size = self._lines, [], 0
            if not lines:
                return
            data = memoryview(b"".join(lines))
            while data:
                written = os.write(self._fd, data)
                data = data[written:]

    def _run(self) -> None:
        while True:
            time.sleep(self._delay)
            self.drain()


def _watch_forks(sink: LineSink) -> None:
    """Reset `sink` in every forked child (one hook for all sinks; a dead sink is dropped)."""
    global _fork_hook
    _SINKS.add(sink)
    if not _fork_hook:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook = True


def _after_fork_in_child() -> None:
    for sink in list(_SINKS):
        sink.after_fork()


def flush_logs() -> None:
    """Write any batched log lines now (shutdown)."""
    if _sink is not None:
        _sink.drain()


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog from the [log] section: in the CLI, and again in each worker."""
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
            atexit.register(flush_logs)
        factory = structlog.BytesLoggerFactory(file=_sink)  # type: ignore[arg-type]  # write+flush suffice
    else:
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    processors: list[Any] = [  # write_event takes the stamp and the renderer by position
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcStamper(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    global _json_pipeline, _json_logger
    _json_pipeline, _json_logger = (
        (None, None) if fmt == "console" else (tuple(processors), factory())
    )


def write_event(method: str, event_dict: dict[str, Any]) -> bool:
    """Write one event (`method`: info, warning, ...) as the configured JSON pipeline renders it,
    without structlog's per-call layers (~5 us of a cache hit's request line). False, and nothing
    written, when that pipeline is not the one in place: the console renderer, or a test that
    captures logs (structlog.testing.capture_logs swaps the processors)."""
    pipeline, logger = _json_pipeline, _json_logger
    # capture_logs empties and refills the configured list in place: compare what it holds.
    if (
        pipeline is None
        or logger is None
        or tuple(structlog.get_config()["processors"]) != pipeline
    ):
        return False
    rendered: Any = event_dict
    plain = method in _PLAIN_LEVELS and "exc_info" not in event_dict
    if plain and not structlog.contextvars.get_contextvars():
        # What merge_contextvars, add_log_level and format_exc_info would do: nothing to
        # merge, the level as named, no exception. Then the stamp and the JSON, as theirs.
        event_dict["level"] = method
        stamp, render = pipeline[2], pipeline[4]
        logger.msg(render(logger, method, stamp(logger, method, event_dict)))
        return True
    for processor in pipeline:
        rendered = processor(logger, method, rendered)
    logger.msg(rendered)
    return True


class UtcStamper:
    """structlog's TimeStamper(fmt="iso", utc=True), the same text ("2026-01-02T03:04:05.678901Z",
    no fraction at a whole second as datetime.isoformat), with the part up to the second formatted
    once per second: a third of the cost on every line."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
            self._prefix = moment.isoformat().removesuffix("+00:00")
            self._second = second
        event_dict["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else self._prefix + "Z"
        return event_dict
