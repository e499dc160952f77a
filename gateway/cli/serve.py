"""`gateway serve`: decode the settings once, set up logging, run the HTTP server."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.options import settings_from


def register(sub: Any) -> None:
    """Add `serve` to the top-level subparsers."""
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="bind port (default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument("--cache-dir", help="cache directory (overrides [cache] dir)")
    serve.add_argument(
        "--fake-upstream",
        action="store_true",
        help="offline demo: deterministic stand-in vectors from the built-in FakeGemini",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from gateway.observability.logs import configure_logging
    from gateway.server import serve

    settings = settings_from(args)
    configure_logging(settings.log)
    serve(settings)
    return 0
