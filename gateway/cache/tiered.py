"""TieredCache: the local VectorCache with the fleet's shared tier behind its disk.

Read: memory -> local disk -> shared (one MGET for the keys still missing). A shared hit joins
the memory tier at once and is written back to the local disk off the loop, byte for byte the
record the other replica stored, so the next read here never leaves the machine.
Write: the local disk and the shared tier (one pipeline) side by side; the shared write failing
is a counted drop, never the request's failure. The local write's outcome is what set_many says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import structlog

from gateway.cache.shared import SharedTier
from gateway.cache.store import Cached, Record, VectorCache
from gateway.config import CacheSettings, Settings

log = structlog.get_logger("gateway.cache")


def to_cached(record: Record) -> Cached | None:
    """The served form of a record, or None when its vector does not match its dims."""
    vector = np.frombuffer(record.vector, dtype="<f4")
    if vector.shape != (record.dims,):
        return None
    return Cached(vector, record.tokens)


def to_record(model: str, item: Cached, now: float) -> Record:
    vector = np.ascontiguousarray(item.vector, dtype="<f4")
    return Record(model, vector.shape[0], now, item.tokens, vector.tobytes())


class TieredCache(VectorCache):
    """A VectorCache that also reads and writes the shared tier."""

    def __init__(
        self,
        settings: CacheSettings,
        shared: SharedTier,
        *,
        writes: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, writes=writes, clock=clock)
        self.shared = shared
        self.written_back = 0  # shared hits written to the local disk
        self._pending: set[asyncio.Future[None]] = set()

    async def get_many(
        self, keys: Iterable[bytes], *, remember: bool = True
    ) -> dict[bytes, Cached]:
        """Every key found: memory, then disk, then one MGET to the shared tier for the rest."""
        keys = list(keys)
        found = await super().get_many(keys, remember=remember)
        rest = [k for k in keys if k not in found]
        if not rest:
            return found
        records = await self.shared.get_many(rest)
        if not records:
            return found
        good: dict[bytes, Record] = {}
        for key, record in records.items():
            item = to_cached(record)
            if item is not None:
                good[key] = record
                found[key] = item
                if remember:
                    self.hot.put(key, item)
        if good and not self.read_only:
            self._write_back(good)
        return found

    def _write_back(self, records: dict[bytes, Record]) -> None:
        """The shared hits onto the local disk, in the cache's thread pool; nobody waits."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self._put_back, records)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _put_back(self, records: dict[bytes, Record]) -> None:
        try:
            self.written_back += self.put_records(records, overwrite=False)
        except Exception as exc:  # the next read goes to the shared tier again: nothing lost
            log.warning("shared hits not written to the local disk", error=type(exc).__name__)

    async def set_many(
        self, model: str, items: Mapping[bytes, Cached], *, remember: bool = True
    ) -> None:
        """Local disk and shared tier side by side; raises only if the local write failed."""
        if not items:
            return
        now = time.time()
        records = {key: to_record(model, item, now) for key, item in items.items()}
        local, _ = await asyncio.gather(
            self._put_local(records, items if remember else {}),
            self.shared.put_many(records),
            return_exceptions=True,
        )
        if isinstance(local, BaseException):
            raise local

    async def _put_local(self, records: dict[bytes, Record], items: Mapping[bytes, Cached]) -> None:
        """The very records the shared tier gets, so both hold the same bytes; `items` go to the
        memory tier too."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.put_records, records)
        for key, item in items.items():
            self.hot.put(key, item)

    async def set_local(self, model: str, items: Mapping[bytes, Cached]) -> None:
        """Only the local tiers: for vectors another replica already put in the shared tier."""
        await super().set_many(model, items)

    async def drain(self) -> None:
        """Wait for the write-backs in flight (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Let the write-backs land, then close the shared client (the disk closes in close())."""
        await self.drain()
        await self.shared.aclose()


def open_cache(settings: Settings, *, writes: bool = True) -> VectorCache:
    """The app's cache: tiered over the shared server when [shared] url is set, else local."""
    if not settings.shared.enabled:
        return VectorCache(settings.cache, writes=writes)
    return TieredCache(settings.cache, SharedTier(settings.shared), writes=writes)
