"""SharedTier: the Redis/Valkey tier a fleet shares, and its binary record format.

Best effort by construction: every call is bounded by `timeout_ms`, a failure is counted and
answered as "not there" (reads), "dropped" (writes) or None (callers fall back to local), and
after `failures` failures in a row the tier is skipped for `cooldown_s`, so a dead server costs
no latency; the first call after the cool-down tries again, so a restarted server comes back
without a gateway restart.

Stored value (version 1): one byte 0x01, then the disk tier's record, a msgpack array
[model: str, dims: int, created: float (unix s), tokens: int, vector: bin (dims x float32 LE)].
Keys: `<prefix>v:<64 hex of the 32-byte content key>`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import msgspec
import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache.store import Record, decode_record
from gateway.config.shared import SharedSettings

log = structlog.get_logger("gateway.cache.shared")
VERSION = b"\x01"
TierState = Literal["off", "ok", "cooling"]
T = TypeVar("T")
_encode = msgspec.msgpack.Encoder().encode
# What a failing tier raises: the client's errors, a socket's, and the timeout around each call.
FAILURES = (RedisError, OSError, TimeoutError, ConnectionError)
MGET_KEYS = 1000  # keys per MGET at most (about 12 MB of 3072-dim vectors)
DESCRIBE_S = 2.0  # the bound on describe() (stats, the console), whatever timeout_ms says
ROUND_TRIP_BOUNDS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


def encode_value(record: Record) -> bytes:
    """The shared value for `record`: the version byte, then the disk tier's bytes."""
    return VERSION + _encode(record)


def decode_value(raw: object) -> Record | None:
    """The Record in a shared value, or None when it is not one (another version or damaged)."""
    if not isinstance(raw, bytes) or raw[:1] != VERSION:
        return None
    return decode_record(raw[1:])


class SharedTier:
    """One Redis client per process; every call bounded, counted, and skipped while cooling."""

    def __init__(
        self,
        settings: SharedSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.prefix = settings.prefix.encode()
        self.timeout_s = settings.timeout_ms / 1000.0
        self._clock = clock
        self.client = client if client is not None else _client(settings, self.timeout_s)
        self.cooling_until = 0.0
        self._failures_in_row = 0
        self.last_error: str | None = None
        # counters since start, for /metrics
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.skipped = 0  # calls not made because the tier was cooling down
        self.dropped_writes = 0  # vectors not written to the tier (it failed)
        self.lease_waits = 0  # keys awaited because another replica held their lease
        self.lease_takeovers = 0  # keys taken over from a holder that failed or died
        self.round_trip_counts = [0] * (len(ROUND_TRIP_BOUNDS) + 1)  # per bound, then +Inf
        self.round_trip_seconds = 0.0
        self._lookups: deque[tuple[list[bytes], asyncio.Future[dict[bytes, Record]]]] = deque()
        self._reader: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> TierState:
        """ok, or cooling while a failing tier is skipped."""
        return "cooling" if self._clock() < self.cooling_until else "ok"

    @property
    def usable(self) -> bool:
        """False while cooling: callers go local at once."""
        return self._clock() >= self.cooling_until

    def key(self, content_key: bytes) -> bytes:
        return self.prefix + b"v:" + content_key.hex().encode()

    async def call(self, what: str, make: Callable[[], Awaitable[T]]) -> T | None:
        """`make()`'s result, or None when the tier is cooling, fails, or exceeds timeout_ms."""
        if not self.usable:
            self.skipped += 1
            return None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await make()
        except FAILURES as exc:
            self.failed(what, exc)
            return None
        self._timed(time.perf_counter() - started)
        self._failures_in_row = 0
        if self.last_error is not None:
            log.info("shared tier answers again", call=what)
            self.last_error = None
        return result

    def _timed(self, seconds: float) -> None:
        self.round_trip_seconds += seconds
        self.round_trip_counts[bisect.bisect_left(ROUND_TRIP_BOUNDS, seconds)] += 1

    def failed(self, what: str, exc: BaseException) -> None:
        """Count a failure; after `failures` in a row, skip the tier for `cooldown_s`."""
        self.errors += 1
        self._failures_in_row += 1
        reason = type(exc).__name__ if isinstance(exc, TimeoutError) else _reason(exc)
        first = self.last_error is None
        self.last_error = reason
        # A call past timeout_ms cools the tier at once: a slow server would otherwise cost every
        # request up to `failures` timeouts (look-up, lease, write) before it is skipped.
        if self._failures_in_row >= self.settings.failures or isinstance(exc, TimeoutError):
            self._failures_in_row = 0
            self.cooling_until = self._clock() + self.settings.cooldown_s
            log.warning(
                "shared tier failing: skipped for the cool-down, serving from local tiers",
                call=what,
                reason=reason,
                cooldown_s=self.settings.cooldown_s,
            )
        elif first:
            log.warning("shared tier call failed; served locally", call=what, reason=reason)

    # -- vectors -------------------------------------------------------------------------

    async def get_many(self, keys: list[bytes]) -> dict[bytes, Record]:
        """Every key found; {} when the tier is cooling or failing.

        Concurrent look-ups share MGETs, one in flight at a time: a burst of 100 requests is a
        few MGETs on one connection, not 100 connections racing timeout_ms on a busy loop.
        """
        if not keys:
            return {}
        if not self.usable:
            self.skipped += 1
            return {}
        future: asyncio.Future[dict[bytes, Record]] = asyncio.get_running_loop().create_future()
        self._lookups.append((keys, future))
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_queued(), name="shared-mget")
        return await future

    async def _read_queued(self) -> None:
        """MGET what is queued (at most MGET_KEYS keys at once) until the queue is empty."""
        try:
            while self._lookups:
                batch: list[tuple[list[bytes], asyncio.Future[dict[bytes, Record]]]] = []
                wanted: dict[bytes, None] = {}
                while self._lookups and (not batch or len(wanted) < MGET_KEYS):
                    keys, future = self._lookups.popleft()
                    batch.append((keys, future))
                    wanted.update(dict.fromkeys(keys))
                found = await self._mget(list(wanted))
                for keys, future in batch:
                    if not future.done():
                        future.set_result({k: found[k] for k in keys if k in found})
        finally:
            self._reader = None
            for _, future in self._lookups:  # only when cancelled (shutdown)
                if not future.done():
                    future.set_result({})
            self._lookups.clear()

    async def _mget(self, keys: list[bytes]) -> dict[bytes, Record]:
        names = [self.key(k) for k in keys]
        raw = await self.call("mget", lambda: self.client.mget(names))
        found: dict[bytes, Record] = {}
        if raw is None:
            return found
        for key, value in zip(keys, raw, strict=True):
            record = decode_value(value)
            if record is not None:
                found[key] = record
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    async def put_many(self, records: Mapping[bytes, Record]) -> bool:
        """Write `records` in one pipeline (with the TTL, if any); False when dropped."""
        if not records:
            return True
        ttl_ms = int(self.settings.ttl_s * 1000) or None

        async def write() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key, record in records.items():
                pipe.set(self.key(key), encode_value(record), px=ttl_ms)
            return await pipe.execute()

        if await self.call("set", write) is None:
            self.dropped_writes += len(records)
            return False
        return True

    # -- operations ----------------------------------------------------------------------

    async def ping(self) -> bool:
        """True when the server answers within timeout_ms (tried even while cooling)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self.client.ping())  # type: ignore[misc]
        except FAILURES:
            return False

    async def describe(self) -> dict[str, Any]:
        """Reachable, keys under the prefix (a SCAN count) and the server's memory, for stats."""
        out: dict[str, Any] = {"url": _safe_url(self.settings.url), "reachable": False}
        try:
            async with asyncio.timeout(max(self.timeout_s, DESCRIBE_S)):
                memory = await self.client.info("memory")
                out["reachable"] = True
                out["used_memory_bytes"] = int(memory.get("used_memory", 0))
                keys = 0
                async for _ in self.client.scan_iter(match=self.prefix + b"v:*", count=1000):
                    keys += 1
                out["keys"] = keys
        except FAILURES as exc:
            out["error"] = _reason(exc)
        return out

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(*FAILURES):  # a dead server at shutdown is nothing to report
            await self.client.aclose()


def _client(settings: SharedSettings, timeout_s: float) -> redis.Redis:
    # No client-side retries: a retry would multiply the bound; the cool-down is the retry.
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=1024,
    )


def _reason(exc: BaseException) -> str:
    """The class and a short message, never the URL's password."""
    return f"{type(exc).__name__}: {str(exc)[:160]}" if str(exc) else type(exc).__name__


def _safe_url(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


async def shared_state(tier: SharedTier) -> Literal["ok", "cooling", "down"]:
    """For /readyz: cooling without a call (a dead tier costs nothing), else a bounded PING."""
    if tier.state == "cooling":
        return "cooling"
    return "ok" if await tier.ping() else "down"


def shared_stats(settings: SharedSettings) -> dict[str, Any] | None:
    """For `gateway cache stats` (sync): the tier's description, or None when it is off."""
    if not settings.enabled:
        return None

    async def run() -> dict[str, Any]:
        # The serving bound (timeout_ms, 50 ms) is for the hot path; a SCAN from the CLI may take
        # longer a round trip on a busy server, and it was cut off mid-count ("keys" missing).
        bound_ms = max(settings.timeout_ms, DESCRIBE_S * 1000)
        tier = SharedTier(msgspec.structs.replace(settings, timeout_ms=bound_ms))
        try:
            return await tier.describe()
        finally:
            await tier.aclose()

    return asyncio.run(run())
