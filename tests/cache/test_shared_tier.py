"""The shared tier without a server: its record format, its settings, and its cool-down."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from gateway.cache.shared import VERSION, SharedTier, decode_value, encode_value
from gateway.cache.store import Cached, Record
from gateway.cache.tiered import TieredCache, to_cached
from gateway.config import load_settings
from gateway.config.shared import SharedSettings
from gateway.errors import ConfigError
from tests.cache.redis_server import free_port


def test_the_value_is_a_version_byte_then_a_msgpack_record_of_raw_float32() -> None:
    vector = np.arange(4, dtype="<f4")
    record = Record("gemini-embedding-2", 4, 1_700_000_000.5, 7, vector.tobytes())
    value = encode_value(record)
    assert value[:1] == VERSION == b"\x01"
    # what another language reads: a msgpack array, the vector as bytes (float32, little-endian)
    model, dims, created, tokens, raw = msgspec.msgpack.decode(value[1:])
    assert (model, dims, created, tokens) == ("gemini-embedding-2", 4, 1_700_000_000.5, 7)
    assert np.array_equal(np.frombuffer(raw, dtype="<f4"), vector)
    assert decode_value(value) == record
    cached = to_cached(record)
    assert cached is not None and cached.tokens == 7


def test_another_version_or_damage_is_a_miss_not_an_error() -> None:
    record = Record("m", 2, 0.0, 1, np.zeros(2, dtype="<f4").tobytes())
    assert decode_value(b"\x02" + encode_value(record)[1:]) is None
    assert decode_value(VERSION + b"\xc1garbage") is None
    assert decode_value(None) is None
    short = Record("m", 3, 0.0, 1, np.zeros(2, dtype="<f4").tobytes())
    assert to_cached(short) is None  # dims that do not match the bytes are never served


def test_the_url_comes_from_the_environment_and_bad_ones_name_the_key() -> None:
    settings = load_settings(None, {"GATEWAY_SHARED_URL": "redis://cache:6379/0"})
    assert settings.shared.enabled and settings.shared.url == "redis://cache:6379/0"
    assert not load_settings(None, {}).shared.enabled  # off by default
    with pytest.raises(ConfigError, match=r"shared\.url"):
        load_settings(None, {"GATEWAY_SHARED_URL": "http://cache:6379"})
    with pytest.raises(ConfigError, match=r"shared\.prefix"):
        load_settings(None, {"GATEWAY_SHARED_PREFIX": "{slot}"})
    with pytest.raises(ConfigError, match=r"shared\.timeout_ms"):
        load_settings(None, {"GATEWAY_SHARED_TIMEOUT_MS": "0"})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_dead_server_is_skipped_for_the_cool_down_then_tried_again() -> None:
    clock = Clock()
    settings = SharedSettings(
        url=f"redis://127.0.0.1:{free_port()}/0", failures=2, cooldown_s=10, timeout_ms=200
    )
    tier = SharedTier(settings, clock=clock)
    try:
        assert await tier.get_many([b"k" * 32]) == {}  # refused: a miss, not an error
        assert await tier.put_many({b"k" * 32: Record("m", 1, 0.0, 1, b"\0" * 4)}) is False
        assert (tier.errors, tier.state, tier.dropped_writes) == (2, "cooling", 1)
        for _ in range(100):
            assert await tier.get_many([b"k" * 32]) == {}
        assert tier.skipped == 100 and tier.errors == 2  # no connection is even tried
        clock.now += 10
        assert tier.state == "ok"
        assert await tier.get_many([b"k" * 32]) == {}
        assert tier.errors == 3  # tried again after the cool-down
    finally:
        await tier.aclose()


async def test_the_local_tiers_serve_while_the_shared_one_is_down(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {},
        {
            "cache": {"dir": str(tmp_path / "cache")},
            "shared": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout_ms": 200},
        },
    )
    cache = TieredCache(settings.cache, SharedTier(settings.shared))
    try:
        vector = np.ones(8, dtype=np.float32)
        await cache.set_many("m", {b"a" * 32: Cached(vector, 3)})  # local lands, shared drops
        assert cache.shared.dropped_writes == 1
        cache.hot.clear()
        found = await cache.get_many([b"a" * 32, b"b" * 32])
        assert list(found) == [b"a" * 32] and found[b"a" * 32].tokens == 3
    finally:
        await cache.aclose()
        cache.close()
