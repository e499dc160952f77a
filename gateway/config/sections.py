"""The config sections and Settings, the frozen whole every part is handed."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.config.bulk import BulkSettings
from gateway.config.shared import SharedSettings
from gateway.config.similar import NearDuplicateSettings
from gateway.config.types import (
    WEEK,
    AtLeastOne,
    Budget,
    Cap,
    Counter,
    Delay,
    Dims,
    EvictionPolicy,
    HttpUrl,
    NonEmpty,
    PerMinute,
    Port,
    Price,
    Section,
    Timeout,
    UpstreamMode,
)
from gateway.config.ui import UISettings


class ServerSettings(Section, frozen=True):
    host: NonEmpty = "127.0.0.1"
    port: Port = 8080
    workers: AtLeastOne = 1
    max_body_bytes: Cap = 64 * 1024 * 1024
    max_inputs: Cap = 2048
    header_timeout_s: Annotated[float, Meta(ge=0.001, le=WEEK)] = 10.0  # granian takes ms
    body_timeout_s: Timeout = 30.0
    shutdown_timeout_s: Annotated[int, Meta(ge=1, le=86400)] = 25
    metrics_require_key: bool = False


class UpstreamSettings(Section, frozen=True):
    provider: Literal["gemini", "vertex"] = "gemini"
    project: Annotated[str, Meta(pattern=r"^[a-z0-9.:-]*$")] = ""  # vertex: "" = from the ADC
    location: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]*$")] = "global"  # vertex region
    share_cache_across_providers: bool = False
    base_url: HttpUrl = "https://generativelanguage.googleapis.com"
    api_version: NonEmpty = "v1beta"
    mode: UpstreamMode = "online"
    fake: bool = False
    timeout_s: Timeout = 60.0
    max_batch: Annotated[int, Meta(ge=1, le=100)] = 100  # the API takes 100 at most
    max_concurrency: AtLeastOne = 4
    max_wait_ms: Annotated[float, Meta(ge=0, le=60_000)] = 2.0
    hold_max_ms: Annotated[float, Meta(ge=0, le=60_000)] = 250.0
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


class CacheSettings(Section, frozen=True):
    dir: NonEmpty = ".gateway-cache"
    size_limit_bytes: Budget = 10 * 1024**3
    eviction_policy: EvictionPolicy = "least-recently-stored"
    memory_bytes: Budget = 64 * 1024 * 1024
    view_memory_bytes: Budget = 32 * 1024 * 1024
    response_memory_bytes: Budget = 32 * 1024 * 1024
    # SQLite's page cache and memory map, per connection (diskcache opens one per thread):
    # its own defaults (32 MiB + 64 MiB) let a long scan grow each thread's share of RSS.
    sqlite_cache_bytes: Annotated[int, Meta(ge=64 * 1024, le=1024**3)] = 4 * 1024 * 1024
    sqlite_mmap_bytes: Annotated[int, Meta(ge=0, le=1024**4)] = 0


class EmbeddingSettings(Section, frozen=True):
    default_model: NonEmpty = "gemini-embedding-2"
    mrl: Literal["derive", "upstream"] = "derive"


class MediaSettings(Section, frozen=True):
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


class PricingSettings(Section, frozen=True):
    """US dollars per 1M input tokens by modality, for the `dollars saved` metric."""

    text: Price = 0.20
    image: Price = 0.45
    pdf: Price = 0.45
    audio: Price = 6.50
    video: Price = 12.00


class CollectionSettings(Section, frozen=True):
    dir: str = ""
    exact_threshold: Counter = 10_000
    connectivity: Annotated[int, Meta(ge=2, le=1024)] = 16  # HNSW M
    expansion_add: AtLeastOne = 128
    expansion_search: AtLeastOne = 256
    rescore_multiple: AtLeastOne = 4
    rescore_multiple_b1: AtLeastOne = 32
    compact_removed_share: Annotated[float, Meta(gt=0, le=1)] = 0.25
    autosave_s: Delay = 30.0


class LogSettings(Section, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    buffer_ms: Annotated[float, Meta(ge=0, le=60_000)] = 200.0


class ModelSpec(Section, frozen=True):
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


class Settings(Section, frozen=True):
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    cache: CacheSettings = CacheSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    media: MediaSettings = MediaSettings()
    collections: CollectionSettings = CollectionSettings()
    log: LogSettings = LogSettings()
    pricing: PricingSettings = PricingSettings()
    bulk: BulkSettings = BulkSettings()
    shared: SharedSettings = SharedSettings()
    ui: UISettings = UISettings()
    near_duplicates: NearDuplicateSettings = NearDuplicateSettings()
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
