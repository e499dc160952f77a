"""Typed, strict, frozen settings: defaults < config.toml < GATEWAY_* environment < CLI flags."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin

import msgspec

from gateway.errors import ConfigError

UpstreamMode = Literal["online", "cache-only"]
EvictionPolicy = Literal["least-recently-stored", "least-recently-used", "least-frequently-used"]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: immutable, and a typo is an error."""


class ServerSettings(_Section, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 64 * 1024 * 1024
    max_inputs: int = 2048
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    shutdown_timeout_s: int = 25
    metrics_require_key: bool = False


class UpstreamSettings(_Section, frozen=True):
    base_url: str = "https://generativelanguage.googleapis.com"
    api_version: str = "v1beta"
    mode: UpstreamMode = "online"
    fake: bool = False
    timeout_s: float = 60.0
    max_batch: int = 100
    max_concurrency: int = 4
    max_wait_ms: float = 2.0
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    deadline_s: float = 90.0
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0


class CacheSettings(_Section, frozen=True):
    dir: str = ".gateway-cache"
    size_limit_bytes: int = 10 * 1024**3
    eviction_policy: EvictionPolicy = "least-recently-stored"
    memory_bytes: int = 64 * 1024 * 1024
    view_memory_bytes: int = 32 * 1024 * 1024
    response_memory_bytes: int = 32 * 1024 * 1024


class EmbeddingSettings(_Section, frozen=True):
    default_model: str = "gemini-embedding-2"
    mrl: Literal["derive", "upstream"] = "derive"


class MediaSettings(_Section, frozen=True):
    allowed_root: str = ""
    remote_fetch: bool = False
    remote_allowed_hosts: tuple[str, ...] = ()
    remote_timeout_s: float = 10.0
    max_part_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 48 * 1024 * 1024
    # Decoded media bytes being worked on at once, across requests (a semaphore in bytes).
    max_inflight_bytes: int = 96 * 1024 * 1024
    inflight_wait_s: float = 2.0
    # Work per media part: boxes, chunks, markers or headers a container walk may visit.
    max_scan_steps: int = 100_000


class PricingSettings(_Section, frozen=True):
    """US dollars per 1M input tokens by modality, for the `dollars saved` metric."""

    text: float = 0.20
    image: float = 0.45
    pdf: float = 0.45
    audio: float = 6.50
    video: float = 12.00


class CollectionSettings(_Section, frozen=True):
    dir: str = ""
    exact_threshold: int = 10_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 256
    rescore_multiple: int = 4
    rescore_multiple_b1: int = 32
    compact_removed_share: float = 0.25
    autosave_s: float = 30.0


class LogSettings(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    buffer_ms: float = 200.0


class ModelSpec(_Section, frozen=True):
    """One model the gateway serves, and the per-Content limits it enforces locally."""

    id: str
    upstream: str = ""
    aliases: tuple[str, ...] = ()
    dims: int = 3072
    min_dims: int = 128
    multimodal: bool = True
    task_type_upstream: bool = False
    max_tokens: int = 8192
    max_images: int = 6
    max_pdfs: int = 1
    max_pdf_pages: int = 6
    max_videos: int = 1
    max_video_seconds: float = 120.0
    max_audios: int = 1
    max_audio_seconds: float = 80.0
    media_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "audio/wav",
        "audio/mp3",
        "video/mp4",
        "video/mov",
        "application/pdf",
    )

    @property
    def upstream_id(self) -> str:
        """The model name sent upstream."""
        return self.upstream or self.id


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(id="gemini-embedding-2"),
    ModelSpec(id="gemini-embedding-2-preview"),
    ModelSpec(
        id="gemini-embedding-001",
        multimodal=False,
        task_type_upstream=True,
        max_tokens=2048,
        max_images=0,
        max_pdfs=0,
        max_videos=0,
        max_audios=0,
    ),
)


class Settings(_Section, frozen=True):
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    cache: CacheSettings = CacheSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    media: MediaSettings = MediaSettings()
    collections: CollectionSettings = CollectionSettings()
    log: LogSettings = LogSettings()
    pricing: PricingSettings = PricingSettings()
    models: tuple[ModelSpec, ...] = DEFAULT_MODELS

    def model(self, name: str) -> ModelSpec | None:
        """The model for an id or alias, with or without a `models/` prefix."""
        name = name.removeprefix("models/")
        for spec in self.models:
            if name == spec.id or name in spec.aliases:
                return spec
        return None


class Secrets(msgspec.Struct, frozen=True):
    """Secrets come from the environment only and never sit in Settings."""

    upstream_api_key: str | None
    client_keys: frozenset[str]

    def __repr__(self) -> str:
        return f"Secrets(upstream_api_key={'set' if self.upstream_api_key else None}, " + (
            f"client_keys={len(self.client_keys)})"
        )


_NOT_SETTINGS = {"GATEWAY_API_KEYS", "GATEWAY_CONFIG"}
_UNKNOWN_FIELD = re.compile(
    r"Object contains unknown field `(?P<field>[^`]+)`(?: - at `\$(?P<at>[^`]*)`)?"
)


def load_secrets(environ: Mapping[str, str]) -> Secrets:
    """Read the upstream key and client keys from the environment."""
    key = environ.get("GEMINI_API_KEY") or environ.get("GOOGLE_API_KEY") or None
    raw = environ.get("GATEWAY_API_KEYS", "")
    return Secrets(key, frozenset(k.strip() for k in raw.split(",") if k.strip()))


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Decode the TOML file (if any), overlay GATEWAY_* variables, then CLI overrides."""
    environ = environ if environ is not None else {}
    source = "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        try:
            data = msgspec.toml.decode(Path(path).read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: config file not found") from exc
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    _validate(data, source)
    for (section, key), value in _from_environ(environ).items():
        data.setdefault(section, {})[key] = value
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return _validate(data, f"{source} + environment")


def _validate(data: dict[str, Any], source: str) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _UNKNOWN_FIELD.search(message)
        if match:
            where = (match["at"] or "").lstrip(".")
            key = f"{where}.{match['field']}" if where else match["field"]
            raise ConfigError(f"{source}: unknown key `{key}`") from exc
        raise ConfigError(f"{source}: {message}") from exc


@functools.cache
def _sections() -> dict[str, dict[str, Any]]:
    """Section name -> {key: type}, for mapping environment variables onto keys."""
    return {
        f.name: {g.name: g.type for g in msgspec.structs.fields(f.type)}
        for f in msgspec.structs.fields(Settings)
        if f.name != "models"
    }


def _from_environ(environ: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    sections = _sections()
    for name, raw in environ.items():
        if not name.startswith("GATEWAY_") or name in _NOT_SETTINGS or name.startswith("GATEWAY__"):
            continue
        rest = name[len("GATEWAY_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1 :]
        if key not in sections[section]:
            raise ConfigError(f"environment: unknown variable {name} (no key `{section}.{key}`)")
        if get_origin(sections[section][key]) in (tuple, list):
            found[(section, key)] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            found[(section, key)] = raw.strip()
    return found
