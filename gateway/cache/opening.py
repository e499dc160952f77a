"""Opening a cache directory: diskcache when it can be written, else read-only or a clear stop.

Every way it can fail ends in one ConfigError line naming the directory and what to do, never a
raw sqlite3 traceback: a read-only directory in online mode or for a command that writes, a
directory that cannot be opened or created, a `cache.db` that is not a cache.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import diskcache

from gateway.cache.table import DBNAME, CacheTable
from gateway.config import CacheSettings, Secrets, Settings
from gateway.errors import ConfigError

# size_limit_bytes = 0 means unbounded; diskcache needs a number, so "as good as infinite".
_UNBOUNDED = 2**62


def size_limit(settings: CacheSettings) -> int:
    """The bound diskcache is given (it stores it in its Settings table on every open)."""
    return settings.size_limit_bytes if settings.size_limit_bytes > 0 else _UNBOUNDED


def preflight(settings: Settings, secrets: Secrets) -> None:
    """Open (and close) the directory create_app will open, in `gateway serve` before any worker
    starts: a bad one stops the server with one line, not a worker granian keeps respawning."""
    online = settings.upstream.mode == "online"
    writes = online and (settings.upstream.fake or bool(secrets.upstream_api_key))
    path = Path(os.path.abspath(settings.cache.dir))
    disk, table = open_directory(path, settings.cache, size_limit(settings.cache), writes=writes)
    table.close()
    if disk is not None:
        disk.close()


def open_directory(
    path: Path, settings: CacheSettings, limit: int, *, writes: bool
) -> tuple[diskcache.Cache | None, CacheTable]:
    """diskcache on `path`; failing that and when no write is needed, a read-only table."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        disk = diskcache.Cache(
            str(path),
            size_limit=limit,
            eviction_policy=settings.eviction_policy,
            cull_limit=0,
            statistics=False,
            sqlite_cache_size=settings.sqlite_cache_bytes // 4096,  # pages of 4 KiB
            sqlite_mmap_size=settings.sqlite_mmap_bytes,
        )
    except (OSError, sqlite3.Error) as exc:
        failure: Exception = exc
    else:
        return disk, CacheTable(path)
    reason = _reason(failure)
    if not _is_file(path / DBNAME):
        raise ConfigError(
            f"cache directory {path} cannot be opened or created ({reason}): make it (or its "
            "parent) writable by this user, or point [cache] dir, GATEWAY_CACHE_DIR or "
            "--cache-dir at one that is"
        ) from failure
    if writes:
        raise ConfigError(
            f"cache directory {path} cannot be written ({reason}), and this needs to write: "
            "make it writable by this user or choose another ([cache] dir, GATEWAY_CACHE_DIR, "
            '--cache-dir); a read-only warm cache is served with [upstream] mode = "cache-only"'
        ) from failure
    try:
        return None, CacheTable.open(path, allow_immutable=True)
    except sqlite3.Error as exc:
        raise ConfigError(
            f"cache directory {path} cannot be read ({_reason(exc)}): is {DBNAME} a gateway "
            "cache? `gateway cache verify` tells"
        ) from exc


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).split(":")[0] if isinstance(error, OSError) else str(error)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
