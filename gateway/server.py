"""The HTTP server `gateway serve` starts: granian running create_app in each worker."""

from __future__ import annotations

import gc
import os
import signal
import socket
from typing import TYPE_CHECKING

import msgspec

from gateway.cache.opening import preflight
from gateway.config import Settings, load_secrets
from gateway.errors import ConfigError

if TYPE_CHECKING:  # litestar is the workers' import: the parent only forks them (~0.2 s)
    from litestar import Litestar

SETTINGS_ENV = "GATEWAY__SETTINGS"


def asgi_app() -> Litestar:
    """Factory granian calls in each worker: rebuild the app from the settings the CLI decoded."""
    from gateway.app import create_app
    from gateway.observability.logs import configure_logging

    raw = os.environ.get(SETTINGS_ENV)
    settings = msgspec.json.decode(raw, type=Settings) if raw else Settings()
    configure_logging(settings.log)
    app = create_app(settings)
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
