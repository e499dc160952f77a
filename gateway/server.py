"""The HTTP server `gateway serve` starts: granian running create_app in each worker."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import time
from typing import TYPE_CHECKING

import msgspec

from gateway.cache.opening import preflight
from gateway.config import Settings, load_secrets
from gateway.errors import ConfigError

if TYPE_CHECKING:  # litestar is the workers' import: the parent only forks them (~0.2 s)
    from litestar import Litestar

SETTINGS_ENV = "GATEWAY__SETTINGS"
# A file path: the worker then records how late its event loop runs (see LoopProbe). A
# diagnostic for benchmarks, not a setting: asyncio's debug mode costs every callback.
PROBE_ENV = "GATEWAY__LOOP_PROBE"
PROBE_DEBUG_ENV = "GATEWAY__LOOP_PROBE_DEBUG"  # set: also asyncio debug's slow-callback log


def asgi_app() -> Litestar:
    """Factory granian calls in each worker: rebuild the app from the settings the CLI decoded."""
    from gateway.app import create_app
    from gateway.observability.logs import configure_logging

    raw = os.environ.get(SETTINGS_ENV)
    settings = msgspec.json.decode(raw, type=Settings) if raw else Settings()
    configure_logging(settings.log)
    app = create_app(settings)
    install_loop_probe(app)
    # Everything imported so far (litestar, google-genai's pydantic models, numpy) lives as long
    # as the process. Freezing it keeps full collections from walking it: they stalled every
    # request in flight for ~50-100 ms (p99 of a warm hit at 16 clients: 97 ms unfrozen, 15 ms
    # frozen, bench/results/server.md).
    gc.collect()
    gc.freeze()
    return app


def serve(settings: Settings) -> None:
    """Run the gateway until SIGINT/SIGTERM; in-flight requests finish before workers exit."""
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    ensure_port_free(settings.server.host, settings.server.port)
    preflight(settings, load_secrets(os.environ))  # a bad cache dir stops here, not in a worker
    os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
    Granian(
        target="gateway.server:asgi_app",
        factory=True,
        address=settings.server.host,
        port=settings.server.port,
        interface=Interfaces.ASGI,
        workers=settings.server.workers,
        loop=Loops.auto,
        log_enabled=True,
        log_access=False,
        # Slow clients: headers must arrive within header_timeout_s (the body deadline is the
        # app's, see api/limits.py); on SIGTERM in-flight requests get shutdown_timeout_s.
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.server.header_timeout_s * 1000)
        ),
        workers_kill_timeout=max(1, settings.server.shutdown_timeout_s),
        # A worker that dies (OOM kill, segfault) is replaced at once instead of taking the
        # server down with it; granian still exits when a fresh worker dies within 5.5 s.
        respawn_failed_workers=True,
    ).serve()
    # Stopped. Interpreter exit restores the default SIGTERM action, so a second SIGTERM now
    # (a group kill after the first, systemd's way) would turn exit 0 into "killed".
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on: granian binds with SO_REUSEPORT, so a second
    gateway would silently share the port (and split the traffic) instead of failing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def install_loop_probe(app: Litestar, path: str | None = None) -> None:
    """With PROBE_ENV set (or `path`), run a LoopProbe from the app's startup to its shutdown."""
    target = path or os.environ.get(PROBE_ENV)
    if not target:
        return
    probe = LoopProbe(target, slow_callbacks=bool(os.environ.get(PROBE_DEBUG_ENV)))
    app.on_startup.append(probe.start)
    app.on_shutdown.append(probe.stop)


class LoopProbe(logging.Handler):
    """Writes JSON lines to `path`: `start` (the worker's pid), each 1 ms sleep that woke over
    2 ms late (`lag`), each gc collection (`gc`: generation and pause) and, with `slow_callbacks`,
    asyncio debug's log of callbacks that ran over 5 ms (`slow`). Every record has `t`, wall-clock
    seconds. Records are buffered and appended every 0.5 s and at shutdown."""

    def __init__(self, path: str, *, slow_callbacks: bool = False, tick_s: float = 0.001) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.slow_callbacks = slow_callbacks
        self.tick_s = tick_s
        self.late_s = 0.002
        self._events: list[dict[str, object]] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.slow_callbacks:
            loop.set_debug(True)
            loop.slow_callback_duration = 0.005
            logging.getLogger("asyncio").addHandler(self)
        gc.callbacks.append(self._on_gc)
        self._events.append({"t": time.time(), "kind": "start", "pid": os.getpid()})
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        logging.getLogger("asyncio").removeHandler(self)
        self.flush()

    async def _run(self) -> None:
        flushed = time.perf_counter()
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            now = time.perf_counter()
            late = now - started - self.tick_s
            if late > self.late_s:
                self._events.append({"t": time.time(), "kind": "lag", "ms": late * 1000})
            if now - flushed > 0.5:
                self.flush()
                flushed = now

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._gc_started) * 1000
        record = {"t": time.time(), "kind": "gc", "gen": info["generation"], "ms": pause}
        self._events.append(record)

    def emit(self, record: logging.LogRecord) -> None:
        """asyncio's own log: "Executing <Task ...> took 0.012 seconds" in debug mode."""
        self._events.append({"t": time.time(), "kind": "slow", "what": record.getMessage()[:400]})

    def flush(self) -> None:
        events, self._events = self._events, []
        if events:
            with open(self.path, "a", encoding="utf-8") as out:
                out.writelines(json.dumps(event) + "\n" for event in events)
