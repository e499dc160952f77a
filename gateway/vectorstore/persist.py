"""Crash-safe files: write a temporary sibling, fsync it, rename it over the target, fsync dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's contents to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Produce `path` through `write(tmp)` so a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(directory: Path) -> None:
    """Delete temporaries a crash left behind in `directory`."""
    for leftover in directory.glob(f".*{TMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
