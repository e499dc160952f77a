"""Local media files (`file://` URIs or paths), only under `[media] allowed_root`."""

from __future__ import annotations

import os
import stat
import urllib.parse
from pathlib import Path

from gateway.config import MediaSettings
from gateway.errors import InvalidRequest, PayloadTooLarge


def local_path(uri: str, *, param: str) -> str:
    """The filesystem path a `file://` URI or a bare path names."""
    if uri[:7].lower() != "file://":
        return uri
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequest(
            f"`{param}` names a file on another host ({parts.netloc})", param=param
        )
    return urllib.parse.unquote(parts.path)


def read_local_file(uri: str, *, param: str, settings: MediaSettings) -> bytes:
    """The bytes of a file under the allowed root, after resolving every symlink; else a 400."""
    if not settings.allowed_root:
        raise InvalidRequest(
            f"`{param}` is a local file, but local files are off (set [media] allowed_root)",
            param=param,
        )
    root = Path(settings.allowed_root).resolve()
    path = Path(local_path(uri, param=param)).expanduser()
    # Relative paths are relative to the root; resolve() follows every symlink and `..`.
    real = (root / path).resolve()
    if not real.is_relative_to(root):
        raise InvalidRequest(
            f"`{param}` is outside the allowed root for local files ([media] allowed_root)",
            param=param,
        )
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise InvalidRequest(f"`{param}` is not a readable file", param=param) from None
    with os.fdopen(fd, "rb") as file:
        # A directory swapped for a symlink after resolve() would show here, in what was opened.
        opened = Path(f"/proc/self/fd/{fd}")
        if opened.exists() and not opened.resolve().is_relative_to(root):
            raise InvalidRequest(f"`{param}` moved outside the allowed root", param=param)
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequest(f"`{param}` is not a regular file", param=param)
        if info.st_size > settings.max_part_bytes:
            raise PayloadTooLarge(
                f"`{param}` is {info.st_size:,} bytes; at most {settings.max_part_bytes:,} are "
                "allowed per media part ([media] max_part_bytes)",
                param=param,
            )
        return file.read(settings.max_part_bytes + 1)
