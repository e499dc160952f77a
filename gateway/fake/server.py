"""Serving FakeGemini on a real socket: in a thread for tests, or from an ASGI server."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.fake.fake_gemini import FakeGemini

_STARTUP_TIMEOUT_S = 10.0


def create_fake_app() -> FakeGemini:
    """Factory for ASGI servers: `uvicorn --factory gateway.fake:create_fake_app`.

    `FAKE_GEMINI_LATENCY_MS` adds that much delay to every embedding call (bench/ uses it).
    """
    latency_ms = float(os.environ.get("FAKE_GEMINI_LATENCY_MS", "0") or 0)
    return FakeGemini(latency_s=latency_ms / 1000.0)


@contextmanager
def run_fake_in_thread(fake: FakeGemini, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `fake` with uvicorn on a background thread; yields its base URL.

    Port 0 picks a free port. The socket is bound here, before uvicorn starts, so the URL
    is known without racing the server; leaving the block stops the server.
    """
    import uvicorn  # a dev dependency: only the socket runner needs it

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every answer (headers, then body) waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(fake, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-gemini", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeGemini's uvicorn server did not start")
            time.sleep(0.005)
        url_host = f"[{host}]" if family == socket.AF_INET6 else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5.0)
        sock.close()
