"""The `gateway` command: serve, and the admin subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway import cli_cache, cli_collections
from gateway.config import Settings, load_settings
from gateway.errors import ConfigError


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config
    if path is None and Path("config.toml").is_file():
        path = "config.toml"
    overrides: dict[str, dict[str, object]] = {
        "server": {"host": getattr(args, "host", None), "port": getattr(args, "port", None)},
    }
    if getattr(args, "workers", None):
        overrides["server"]["workers"] = args.workers
    if getattr(args, "fake_upstream", False):
        overrides["upstream"] = {"fake": True}
    if getattr(args, "cache_dir", None):
        overrides["cache"] = {"dir": args.cache_dir}
    return load_settings(path, os.environ, overrides)


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.server import serve

    settings = _settings(args)
    configure_logging(settings.log)
    serve(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gateway", description="Local caching gateway for Gemini embeddings."
    )
    parser.add_argument("--config", help="config file (default: ./config.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True)
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
    cli_cache.register(sub)
    cli_collections.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gateway` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
