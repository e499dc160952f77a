"""The `gateway` command: serve, and the admin subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import bulk, cache, collections, serve
from gateway.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gateway", description="Local caching gateway for Gemini embeddings."
    )
    parser.add_argument("--config", help="config file (default: ./config.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)
    cache.register(sub)
    collections.register(sub)
    bulk.register(sub)
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
