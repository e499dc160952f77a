"""Typed, strict, frozen settings: defaults < config.toml < GATEWAY_* environment < CLI flags.

Every number carries its range (msgspec Meta), so nonsense stops the server with one line naming
the key, the value and where it came from (the file, the GATEWAY_* variable or the command line).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import msgspec
from msgspec import Meta

from gateway.errors import ConfigError

UpstreamMode = Literal["online", "cache-only"]
EvictionPolicy = Literal["least-recently-stored", "least-recently-used", "least-frequently-used"]

# The ranges, by what a number means. Port 0 (an ephemeral port) is refused: the server would
# listen where no client is told to look.
Port = Annotated[int, Meta(ge=1, le=65535)]
AtLeastOne = Annotated[int, Meta(ge=1)]  # workers, concurrency, steps: 0 would do nothing
Cap = Annotated[int, Meta(ge=1)]  # a byte or item cap that must let something through
Budget = Annotated[int, Meta(ge=0)]  # a memory tier or a size bound: 0 = off / unbounded
Counter = Annotated[int, Meta(ge=0)]  # retries, failures, per-model media counts: 0 = none / off
PerMinute = Annotated[int, Meta(ge=0)]  # a rate: 0 = off
_WEEK = 7 * 86400.0  # a finite upper bound: inf would overflow the servers' millisecond timers
Timeout = Annotated[float, Meta(gt=0, le=_WEEK)]  # 0 would fail every request at once
Delay = Annotated[float, Meta(ge=0, le=_WEEK)]  # a wait or an interval: 0 = none / off
Price = Annotated[float, Meta(ge=0, le=1e6)]  # dollars per 1M tokens
Dims = Annotated[int, Meta(ge=1, le=65536)]
NonEmpty = Annotated[str, Meta(min_length=1)]
HttpUrl = Annotated[str, Meta(pattern=r"^https?://[^\s/]+")]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: immutable, and a typo is an error."""


class ServerSettings(_Section, frozen=True):
    host: NonEmpty = "127.0.0.1"
    port: Port = 8080
    workers: AtLeastOne = 1
    max_body_bytes: Cap = 64 * 1024 * 1024
    max_inputs: Cap = 2048
    header_timeout_s: Annotated[float, Meta(ge=0.001, le=_WEEK)] = 10.0  # granian takes ms
    body_timeout_s: Timeout = 30.0
    shutdown_timeout_s: Annotated[int, Meta(ge=1, le=86400)] = 25
    metrics_require_key: bool = False


class UpstreamSettings(_Section, frozen=True):
    base_url: HttpUrl = "https://generativelanguage.googleapis.com"
    api_version: NonEmpty = "v1beta"
    mode: UpstreamMode = "online"
    fake: bool = False
    timeout_s: Timeout = 60.0
    max_batch: Annotated[int, Meta(ge=1, le=100)] = 100  # the API takes 100 at most
    max_concurrency: AtLeastOne = 4
    max_wait_ms: Annotated[float, Meta(ge=0, le=60_000)] = 2.0
    max_retries: Counter = 4
    backoff_base_s: Delay = 0.5
    backoff_max_s: Delay = 20.0
    deadline_s: Timeout = 90.0
    requests_per_minute: PerMinute = 0
    tokens_per_minute: PerMinute = 0
    breaker_failures: Counter = 5
    breaker_cooldown_s: Delay = 30.0

    def __post_init__(self) -> None:
        if self.backoff_base_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_base_s ({self.backoff_base_s}) is above backoff_max_s "
                f"({self.backoff_max_s})"
            )


class CacheSettings(_Section, frozen=True):
    dir: NonEmpty = ".gateway-cache"
    size_limit_bytes: Budget = 10 * 1024**3
    eviction_policy: EvictionPolicy = "least-recently-stored"
    memory_bytes: Budget = 64 * 1024 * 1024
    view_memory_bytes: Budget = 32 * 1024 * 1024
    response_memory_bytes: Budget = 32 * 1024 * 1024


class EmbeddingSettings(_Section, frozen=True):
    default_model: NonEmpty = "gemini-embedding-2"
    mrl: Literal["derive", "upstream"] = "derive"


class MediaSettings(_Section, frozen=True):
    allowed_root: str = ""
    remote_fetch: bool = False
    remote_allowed_hosts: tuple[str, ...] = ()
    remote_timeout_s: Timeout = 10.0
    max_part_bytes: Cap = 20 * 1024 * 1024
    max_request_bytes: Cap = 48 * 1024 * 1024
    # Decoded media bytes being worked on at once, across requests (a semaphore in bytes).
    max_inflight_bytes: Cap = 96 * 1024 * 1024
    inflight_wait_s: Delay = 2.0
    # Work per media part: boxes, chunks, markers or headers a container walk may visit.
    max_scan_steps: AtLeastOne = 100_000


class PricingSettings(_Section, frozen=True):
    """US dollars per 1M input tokens by modality, for the `dollars saved` metric."""

    text: Price = 0.20
    image: Price = 0.45
    pdf: Price = 0.45
    audio: Price = 6.50
    video: Price = 12.00


class CollectionSettings(_Section, frozen=True):
    dir: str = ""
    exact_threshold: Counter = 10_000
    connectivity: Annotated[int, Meta(ge=2, le=1024)] = 16  # HNSW M
    expansion_add: AtLeastOne = 128
    expansion_search: AtLeastOne = 256
    rescore_multiple: AtLeastOne = 4
    rescore_multiple_b1: AtLeastOne = 32
    compact_removed_share: Annotated[float, Meta(gt=0, le=1)] = 0.25
    autosave_s: Delay = 30.0


class LogSettings(_Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    buffer_ms: Annotated[float, Meta(ge=0, le=60_000)] = 200.0


class ModelSpec(_Section, frozen=True):
    """One model the gateway serves, and the per-Content limits it enforces locally."""

    id: NonEmpty
    upstream: str = ""
    aliases: tuple[str, ...] = ()
    dims: Dims = 3072
    min_dims: Dims = 128
    multimodal: bool = True
    task_type_upstream: bool = False
    max_tokens: Cap = 8192
    max_images: Counter = 6
    max_pdfs: Counter = 1
    max_pdf_pages: Counter = 6
    max_videos: Counter = 1
    max_video_seconds: Delay = 120.0
    max_audios: Counter = 1
    max_audio_seconds: Delay = 80.0
    media_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "audio/wav",
        "audio/mp3",
        "video/mp4",
        "video/mov",
        "application/pdf",
    )

    def __post_init__(self) -> None:
        if self.min_dims > self.dims:
            raise ValueError(f"min_dims ({self.min_dims}) is above dims ({self.dims})")

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

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.models:
            for name in (spec.id, *spec.aliases):
                if name in seen:
                    raise ValueError(f"models: `{name}` names two models")
                seen.add(name)
        if self.model(self.embeddings.default_model) is None:
            raise ValueError(
                f"embeddings.default_model `{self.embeddings.default_model}` is not in [[models]]"
            )

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


# GATEWAY_ names that are not config keys; any other GATEWAY_<SECTION>_<KEY> must name a key.
NOT_CONFIG_VARIABLES = frozenset(
    {
        "GATEWAY_API_KEYS",  # the client keys: a secret, never in Settings (load_secrets)
        "GATEWAY_URL",  # `gateway collections ...`: which gateway to talk to
        "GATEWAY_CLIENT_KEY",  # `gateway collections ...`: the client key it sends
    }
)
INTERNAL_PREFIX = "GATEWAY__"  # the server hands decoded settings to its workers (server.py)
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$\.?(?P<at>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


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
    _validate(data, {}, source)
    origins: dict[str, str] = {}  # "section.key" -> where its value came from, if not the file
    for (section, key), (name, value) in _from_environ(environ).items():
        _section(data, section, source)[key] = value
        origins[f"{section}.{key}"] = f"environment {name}"
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                _section(data, section, source)[key] = value
                origins[f"{section}.{key}"] = "command line"
    return _validate(data, origins, source)


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    section = data.setdefault(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: `{name}` must be a table ([{name}])")
    return section


def _validate(data: dict[str, Any], origins: Mapping[str, str], source: str) -> Settings:
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), data, origins, source)) from exc


def _explain(message: str, data: dict[str, Any], origins: Mapping[str, str], source: str) -> str:
    """One line: where the bad value came from, the key, the value, and what was expected."""
    match = _AT.match(message)
    what, at = (match["what"], match["at"] or "") if match else (message, "")
    unknown = _UNKNOWN_FIELD.match(what)
    if unknown:
        key = f"{at}.{unknown['field']}" if at else unknown["field"]
        return f"{source}: unknown key `{key}`"
    value = _lookup(data, at)
    shown = f" = {value!r}" if value is not None and not isinstance(value, dict | list) else ""
    key = f"`{at}`{shown}: " if at else ""
    return f"{_origin(at, origins, source)}: {key}{what}"


def _origin(at: str, origins: Mapping[str, str], source: str) -> str:
    """Where the value at `at` came from; for a check across keys, every place that set one."""
    if at in origins:
        return origins[at]
    inside = sorted({o for k, o in origins.items() if not at or k.startswith(at + ".")})
    if not inside:
        return source
    return ", ".join(inside if source == "defaults" else [source, *inside])


def _lookup(data: Any, at: str) -> Any:
    """The raw value at a msgspec path like `models[1].dims`, or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", at):
        try:
            data = data[int(part[1:-1])] if part.startswith("[") else data[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return data


@functools.cache
def _sections() -> dict[str, dict[str, Any]]:
    """Section name -> {key: type}, for mapping environment variables onto keys."""
    return {
        f.name: {g.name: g.type for g in msgspec.structs.fields(f.type)}
        for f in msgspec.structs.fields(Settings)
        if f.name != "models"
    }


def config_variables() -> list[str]:
    """Every GATEWAY_<SECTION>_<KEY> that sets a key."""
    return [f"GATEWAY_{s}_{k}".upper() for s, keys in _sections().items() for k in keys]


def _from_environ(environ: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """(section, key) -> (variable, value) for every GATEWAY_* setting; a stray name is an error."""
    found: dict[tuple[str, str], tuple[str, Any]] = {}
    sections = _sections()
    for name, raw in environ.items():
        if (
            not name.startswith("GATEWAY_")
            or name in NOT_CONFIG_VARIABLES
            or name.startswith(INTERNAL_PREFIX)
        ):
            continue
        rest = name[len("GATEWAY_") :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        key = rest[len(section) + 1 :] if section is not None else ""
        if section is None or key not in sections[section]:
            raise ConfigError(_unknown_variable(name, section, key))
        if get_origin(sections[section][key]) in (tuple, list):
            value: Any = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            value = raw.strip()
        found[(section, key)] = (name, value)
    return found


def _unknown_variable(name: str, section: str | None, key: str) -> str:
    if name.startswith("GATEWAY_MODELS"):
        return f"environment: unknown variable {name} ([[models]] is set in the config file only)"
    where = f"no key `{section}.{key}`" if section else "no such config section"
    close = difflib.get_close_matches(name, [*config_variables(), *NOT_CONFIG_VARIABLES], n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"environment: unknown variable {name} ({where}){hint}"
