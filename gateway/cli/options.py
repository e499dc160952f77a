"""The one place the CLI finds its settings: --config (or ./config.toml), env, then flags."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gateway.config import Settings, load_settings

DEFAULT_CONFIG = "config.toml"
URL_ENV = "GATEWAY_URL"


def config_path(args: argparse.Namespace) -> str | None:
    """--config when given, else ./config.toml when it exists (relative to the working dir)."""
    path: str | None = getattr(args, "config", None)
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return path


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings for this command: the file, GATEWAY_* env, then the flags this command has."""
    server: dict[str, Any] = {}
    for flag in ("host", "port", "workers"):
        value = getattr(args, flag, None)
        if value is not None:
            server[flag] = value
    overrides: dict[str, dict[str, Any]] = {"server": server}
    if getattr(args, "fake_upstream", False):
        overrides["upstream"] = {"fake": True}
    if getattr(args, "cache_dir", None):
        overrides["cache"] = {"dir": args.cache_dir}
    return load_settings(config_path(args), os.environ, overrides)


def server_url(args: argparse.Namespace) -> str:
    """Where a client command finds the gateway: --url, --host/--port, GATEWAY_URL, then the
    [server] host and port of the settings (GATEWAY_SERVER_*, the config file, the defaults)."""
    url: str | None = getattr(args, "url", None)
    if url:
        return url
    flagged = getattr(args, "host", None) is not None or getattr(args, "port", None) is not None
    env_url = os.environ.get(URL_ENV)
    if env_url and not flagged:
        return env_url
    server = settings_from(args).server
    host = server.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # a wildcard bind answers on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.port}"
