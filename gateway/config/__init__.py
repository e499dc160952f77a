"""Typed, strict, frozen settings: defaults < config.toml < GATEWAY_* environment < CLI flags.

Every number carries its range (msgspec Meta), so nonsense stops the server with one line naming
the key, the value and where it came from (the file, the GATEWAY_* variable or the command line).
A new section is a module here holding its struct, joined to `Settings` in sections.py.
"""

from gateway.config.loading import (
    INTERNAL_PREFIX,
    NOT_CONFIG_VARIABLES,
    config_variables,
    load_secrets,
    load_settings,
)
from gateway.config.sections import (
    CacheSettings,
    CollectionSettings,
    EmbeddingSettings,
    LogSettings,
    MediaSettings,
    ModelSpec,
    PricingSettings,
    Secrets,
    ServerSettings,
    Settings,
    UpstreamSettings,
)
from gateway.config.types import EvictionPolicy, Section, UpstreamMode

__all__ = [
    "INTERNAL_PREFIX",
    "NOT_CONFIG_VARIABLES",
    "CacheSettings",
    "CollectionSettings",
    "EmbeddingSettings",
    "EvictionPolicy",
    "LogSettings",
    "MediaSettings",
    "ModelSpec",
    "PricingSettings",
    "Secrets",
    "Section",
    "ServerSettings",
    "Settings",
    "UpstreamMode",
    "UpstreamSettings",
    "config_variables",
    "load_secrets",
    "load_settings",
]
