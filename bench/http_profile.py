"""CPU per request of the gateway's fresh-bytes hit and of bare litestar, in-process, no sockets.

    python bench/http_profile.py [--requests N] [--profile gateway|bare] [--top 40]

Both apps get the same requests through a minimal ASGI driver (what granian hands the app: a
scope, one body message, a send that drops the answer), so the difference is the gateway's own
work on a hit whose bytes are new (a fresh `user` each time: the response memo cannot replay it).
Process CPU time per request; `--profile` prints cProfile's top functions of one app.
A diagnostic for issue 14's fresh-bytes goal; bench_http.py measures the same over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.http_probe import body  # noqa: E402

WARM = 200
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(path: str, payload: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ],
    }


async def _call(app: App, payload: bytes) -> int:
    """One request; returns its status."""
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a real server waits for the disconnect
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope("/v1/embeddings", payload), receive, send)
    return status


async def _lifespan(app: App) -> Callable[[], Awaitable[None]]:
    """Run the app's startup; returns the shutdown."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return shutdown


def _gateway(cache_dir: Path) -> Any:
    from gateway.app import create_app
    from gateway.config import Secrets, load_settings
    from gateway.fake import FakeGemini
    from gateway.observability.logs import configure_logging
    from gateway.upstream.gemini import GeminiUpstream

    settings = load_settings(None, {}, {"cache": {"dir": str(cache_dir)}})
    configure_logging(settings.log)  # as a granian worker does: the request line is written
    upstream = GeminiUpstream(
        settings.upstream, "bench-key", http_client=FakeGemini().async_httpx_client()
    )
    return create_app(settings, upstream=upstream, secrets=Secrets("bench-key", frozenset()))


def _bare() -> Any:
    from bench.bare_app import create_app

    return create_app()


def _bodies(n: int) -> list[bytes]:
    head = body("the cached single input", "base64")[:-1]
    return [head + b',"user":"u' + str(i).encode() + b'"}' for i in range(n)]


async def _measure(
    app: App, bodies: list[bytes], profile: bool, reps: int
) -> tuple[float, pstats.Stats | None]:
    """CPU microseconds per request: the best of `reps` slices of `bodies` (after 200 warm-up
    requests, the first the miss); other work on a shared machine only ever adds to a slice."""
    shutdown = await _lifespan(app)
    try:
        for payload in bodies[:WARM]:  # the miss, then warm code paths and allocators
            if await _call(app, payload) != 200:
                raise RuntimeError("warm-up request failed")
        gc.collect()
        gc.freeze()  # as a granian worker does after start-up (gateway/server.py)
        prof = cProfile.Profile() if profile else None
        per = (len(bodies) - WARM) // reps
        best = float("inf")
        for rep in range(reps):
            chunk = bodies[WARM + rep * per : WARM + (rep + 1) * per]
            if prof is not None:
                prof.enable()
            start = time.process_time()
            for payload in chunk:
                await _call(app, payload)
            best = min(best, (time.process_time() - start) / per * 1e6)
            if prof is not None:
                prof.disable()
    finally:
        await shutdown()
        gc.unfreeze()
    return best, pstats.Stats(prof) if prof is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/http_profile.py", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", choices=("gateway", "bare"))
    parser.add_argument("--reps", type=int, default=20, help="slices, the best one kept")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--only", choices=("gateway", "bare"), help="measure one app (py-spy)")
    args = parser.parse_args(argv)
    bodies = _bodies(args.requests + WARM)
    # Log lines go where a worker's go when nobody reads them: not this terminal.
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = {}
            for name in [args.only] if args.only else ["bare", "gateway"]:
                app = _bare() if name == "bare" else _gateway(Path(tmp))
                us, stats = asyncio.run(_measure(app, bodies, args.profile == name, args.reps))
                figures[name] = us
                if stats is not None:
                    os.dup2(saved, 2)
                    stats.stream = sys.stdout  # type: ignore[attr-defined]
                    stats.sort_stats(args.sort).print_stats(args.top)
                    os.dup2(devnull, 2)
    finally:
        os.dup2(saved, 2)
    if args.only:
        print(f"CPU per request: {args.only} {figures[args.only]:.1f} us")
        return 0
    bare, gateway = figures["bare"], figures["gateway"]
    print(f"CPU per request: bare litestar {bare:.1f} us, gateway fresh-bytes hit {gateway:.1f} us")
    print(f"gateway extra {gateway - bare:.1f} us; CPU ratio bare/gateway {bare / gateway:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
