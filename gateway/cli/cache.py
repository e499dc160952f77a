"""`gateway cache stats | verify | prune | export | import`: the cache admin commands."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.cli.options import config_path, settings_from
from gateway.config import Settings

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def register(sub: Any) -> None:
    """Add `cache` and its subcommands to the top-level subparsers."""
    cache = sub.add_parser("cache", help="inspect, check, prune, export and import the cache")
    commands = cache.add_subparsers(dest="cache_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    common.add_argument("--cache-dir", help="cache directory (overrides [cache] dir)")
    common.add_argument("--quiet", action="store_true", help="no progress line on stderr")

    stats = commands.add_parser("stats", parents=[common], help="entries, bytes, models")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=_guarded(_stats))

    verify = commands.add_parser("verify", parents=[common], help="check every entry")
    verify.add_argument("--fix", action="store_true", help="remove damaged entries")
    verify.set_defaults(func=_guarded(_verify))

    prune = commands.add_parser("prune", parents=[common], help="remove entries")
    prune.add_argument("--model", help="remove this model's entries")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="stored before this")
    prune.add_argument(
        "--to-size", type=parse_size, metavar="SIZE", help="evict by policy down to e.g. 5G, 500M"
    )
    prune.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    prune.set_defaults(func=_guarded(_prune))

    export = commands.add_parser("export", parents=[common], help="write a portable export")
    export.add_argument("path", type=Path, help="a new (or empty) directory")
    export.add_argument("--model", help="only this model's entries")
    export.add_argument("--shard-rows", type=int, default=4096, help="vectors per .npy file")
    export.set_defaults(func=_guarded(_export))

    load = commands.add_parser("import", parents=[common], help="load an export")
    load.add_argument("path", type=Path, help="a directory written by `gateway cache export`")
    load.add_argument("--overwrite", action="store_true", help="replace entries already present")
    load.set_defaults(func=_guarded(_import))

    from gateway.cli.near import add_near

    add_near(commands, common, _guarded)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from gateway.errors import CommandError

        try:
            return command(args)
        except CommandError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return 1

    return run


def parse_size(text: str) -> int:
    """`5G`, `500M`, `1.5GiB` or plain bytes -> bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5G, 500M, 1048576)")
    unit = " kmgt".index(match[2].lower() or " ")
    return int(float(match[1]) * 1024**unit)


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from(args)


def _open(args: argparse.Namespace, *, writes: bool, create: bool = False) -> Any:
    """The cache; read-only when this command only reads and the directory cannot be written
    (a warm cache on a read-only volume); a command that writes stops there with exit 2."""
    from gateway.cache.store import VectorCache
    from gateway.errors import CommandError

    settings = _settings(args)
    if not create and not Path(settings.cache.dir).is_dir():
        raise CommandError(f"no cache at {os.path.abspath(settings.cache.dir)}")
    return VectorCache(settings.cache, writes=writes)


def _config_file(args: argparse.Namespace) -> str | None:
    """The config file these settings came from, absolute (both it and the cache dir depend on
    the working directory), or None."""
    path = config_path(args)
    return os.path.abspath(path) if path is not None else None


def _stats(args: argparse.Namespace) -> int:
    from gateway.cache.admin import stats
    from gateway.cache.shared import shared_stats

    cache = _open(args, writes=False)
    try:
        report = {**stats(cache, progress=not args.quiet), "config": _config_file(args)}
    finally:
        cache.close()
    report["shared"] = shared_stats(_settings(args).shared)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    limit = report["size_limit_bytes"]
    print(f"cache      {report['directory']}" + (" (read-only)" if report["read_only"] else ""))
    print(f"config     {report['config'] or 'none (defaults and GATEWAY_* environment)'}")
    print(f"entries    {report['entries']:,}")
    print(f"on disk    {_human(report['disk_bytes'])} of {_human(limit) if limit else 'unbounded'}")
    print(f"eviction   {report['eviction_policy']}")
    if report["oldest"] is not None:
        print(f"stored     {report['oldest']} .. {report['newest']}")
    for model, entry in report["models"].items():
        dims = ",".join(map(str, entry["dims"]))
        print(
            f"  {model:<28} {entry['entries']:>10,} vectors  dims {dims}  {entry['tokens']:,} tok"
        )
    if report["damaged"]:
        print(f"damaged    {report['damaged']:,} (run `gateway cache verify --fix`)")
    shared = report["shared"]
    if shared is not None:
        if shared["reachable"]:
            used = _human(shared["used_memory_bytes"])
            print(f"shared     {shared['url']} reachable, {shared['keys']:,} keys, {used} used")
        else:
            print(f"shared     {shared['url']} unreachable: {shared.get('error', 'no answer')}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from gateway.cache.admin import verify

    cache = _open(args, writes=args.fix)
    try:
        report = verify(cache, fix=args.fix, progress=not args.quiet)
    finally:
        cache.close()
    for key, why in list(report.damaged.items())[:20]:
        print(f"damaged {key[:16]}…: {why}")
    for warning in report.integrity:
        print(f"integrity: {warning}")
    print(f"checked {report.checked:,} entries: {len(report.damaged):,} damaged", end="")
    print(f", {report.removed:,} removed" if args.fix else "")
    return 0 if report.ok or (args.fix and report.removed == len(report.damaged)) else 1


def _prune(args: argparse.Namespace) -> int:
    from gateway.cache.admin import prune

    if args.model is None and args.older_than is None and args.to_size is None:
        print("gateway: prune needs --model, --older-than or --to-size", file=sys.stderr)
        return 2
    cache = _open(args, writes=not args.dry_run)
    try:
        report = prune(
            cache,
            model=args.model,
            older_than_s=None if args.older_than is None else args.older_than * 86400,
            to_bytes=args.to_size,
            dry_run=args.dry_run,
            progress=not args.quiet,
        )
    finally:
        cache.close()
    if args.dry_run:
        about = "about " if report.estimated else ""
        print(f"would remove {about}{report.removed:,} entries; {about}{report.left:,} left")
        return 0
    size = _human(report.left_bytes or 0)
    print(f"removed {report.removed:,} entries; {report.left:,} left, {size}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from gateway.cache.transfer import export

    cache = _open(args, writes=False)
    try:
        manifest = export(
            cache, args.path, model=args.model, shard_rows=args.shard_rows, progress=not args.quiet
        )
    finally:
        cache.close()
    shards = len(manifest["shards"])
    print(f"exported {manifest['entries']:,} vectors in {shards} shards to {args.path}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from gateway.cache.transfer import import_, read_manifest

    read_manifest(args.path)  # refuse a bad export before creating a cache
    cache = _open(args, writes=True, create=True)
    try:
        report = import_(cache, args.path, overwrite=args.overwrite, progress=not args.quiet)
    finally:
        cache.close()
    print(
        f"imported {report.imported:,} vectors; {report.skipped:,} already present, "
        f"{report.rejected:,} rejected"
    )
    return 0 if report.rejected == 0 else 1


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
