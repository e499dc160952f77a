"""FleetScheduler: the Scheduler, single-flight across every replica sharing the tier.

A new miss is leased on the shared tier before it joins a batch (gateway.cache.lease). Keys
another replica holds are awaited and served from the value it stores; keys whose holder is gone
(a failed fetch releases at once, a dead holder's lease expires) are taken over here. When the
tier fails or cools down, the plain local single-flight of the Scheduler serves, as without it.
Within this process, identical misses still meet first in `_claims`, so one replica takes one
lease per key however many requests want it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.cache.lease import Leases
from gateway.cache.store import Cached, Record, VectorCache
from gateway.cache.tiered import TieredCache, to_cached
from gateway.config import Settings
from gateway.content.model import Content, EmbedParams, estimate_tokens
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.fleet_budget import FleetBudget
from gateway.upstream.gemini import Upstream
from gateway.upstream.outcome import Failure, Fetched, Settled
from gateway.upstream.scheduler import Scheduler

LocalStore = Callable[[str, Mapping[bytes, Cached]], Awaitable[None]]
_CLOSING = Failure.of(UpstreamUnavailable("the gateway is shutting down", retry_after=1.0))


class FleetScheduler(Scheduler):
    """Scheduler whose misses are leased across replicas first."""

    def __init__(self, *args: Any, leases: Leases, local_store: LocalStore, **kwargs: Any) -> None:
        """`leases` is the shared tier's lease table; `local_store` writes vectors another
        replica fetched into this replica's own tiers only."""
        super().__init__(*args, **kwargs)
        self.leases = leases
        self.local_store = local_store
        self._claims: dict[bytes, asyncio.Future[Settled]] = {}

    def is_inflight(self, key: bytes) -> bool:
        return key in self._claims or super().is_inflight(key)

    async def embed(
        self, items: Mapping[bytes, Content], params: EmbedParams, dims: int
    ) -> dict[bytes, Settled]:
        """A vector or a failure per key; identical keys across the fleet share one item."""
        if not self.leases.usable:
            return await super().embed(items, params, dims)
        deadline = self._clock() + self.settings.deadline_s
        local: dict[bytes, Content] = {}  # already in this process's batches: join them there
        joined: dict[bytes, asyncio.Future[Settled]] = {}
        mine: dict[bytes, Content] = {}
        for key, content in items.items():
            if key in self._claims:
                joined[key] = self._claims[key]
                self.counters.coalesced += 1
            elif super().is_inflight(key):
                local[key] = content
            else:
                mine[key] = content
                self._claims[key] = asyncio.get_running_loop().create_future()
        out: dict[bytes, Settled] = {}
        try:
            parts = await asyncio.gather(
                self._claim(mine, params, dims, deadline),
                super().embed(local, params, dims) if local else _nothing(),
            )
            for part in parts:
                out.update(part)
        finally:
            for key in mine:
                future = self._claims.pop(key)
                if not future.done():
                    future.set_result(out.get(key, _CLOSING))
        if joined:
            await asyncio.wait(set(joined.values()), timeout=max(0.0, deadline - self._clock()))
            for key, future in joined.items():
                out[key] = future.result() if future.done() else self._late()
        return {key: out[key] for key in items}

    async def _claim(
        self, items: dict[bytes, Content], params: EmbedParams, dims: int, deadline: float
    ) -> dict[bytes, Settled]:
        """Lease, then fetch what is ours and wait for what is not, until every key is settled."""
        out: dict[bytes, Settled] = {}
        pending = dict(items)
        while pending:
            claim = await self.leases.acquire(list(pending))
            if claim is None:  # the tier failed: local single-flight, as without it
                out.update(await super().embed(pending, params, dims))
                break
            arrived = dict(claim.stored)
            fetch = {k: pending[k] for k in claim.owned if k not in arrived}
            already = [k for k in claim.owned if k in arrived]
            fetched, (waited, _free) = await asyncio.gather(
                self._fetch(fetch, claim.token, params, dims, already),
                self.leases.wait(claim.foreign, deadline) if claim.foreign else _no_wait(),
            )
            out.update(fetched)
            arrived.update(waited)
            out.update(await self._served(params.model, arrived, pending, dims))
            # keys still leased elsewhere come round again (a wait ends only at its deadline)
            pending = {k: c for k, c in pending.items() if k not in out}
            if pending and self._clock() >= deadline:
                out.update({k: self._late() for k in pending})
                break
            if pending and not self.leases.usable:
                out.update(await super().embed(pending, params, dims))
                break
        return out

    async def _fetch(
        self,
        items: dict[bytes, Content],
        token: bytes,
        params: EmbedParams,
        dims: int,
        also_release: list[bytes],
    ) -> dict[bytes, Settled]:
        """Our leased keys upstream (stored locally and shared before release), then release."""
        keeper = asyncio.create_task(self.leases.hold(list(items), token)) if items else None
        try:
            return await super().embed(items, params, dims) if items else {}
        finally:
            if keeper is not None:
                keeper.cancel()
            # A failure releases too, so waiters take over now rather than at the lease's expiry.
            await self.leases.release([*items, *also_release], token)

    async def _served(
        self,
        model: str,
        records: dict[bytes, Record],
        items: dict[bytes, Content],
        dims: int,
    ) -> dict[bytes, Settled]:
        """Values another replica stored: into this replica's tiers, then to the waiters."""
        good: dict[bytes, Cached] = {}
        for key, record in records.items():
            item = to_cached(record)
            if item is not None and record.dims == dims and key in items:
                good[key] = Cached(item.vector, estimate_tokens(items[key]))
        stored = True
        if good:
            try:
                await self.local_store(model, good)
            except Exception as exc:
                stored = False
                if self.store_health is not None:
                    self.store_health.write_failed(len(good), exc)
        return {key: Fetched(item.vector, stored) for key, item in good.items()}

    def _late(self) -> Failure:
        seconds = self.settings.deadline_s
        return Failure.of(UpstreamTimeout(f"no upstream answer within the {seconds:g} s deadline"))

    async def aclose(self) -> None:
        await self.leases.aclose()
        await super().aclose()


async def _nothing() -> dict[bytes, Settled]:
    return {}


async def _no_wait() -> tuple[dict[bytes, Record], list[bytes]]:
    return {}, []


def build_scheduler(upstream: Upstream, settings: Settings, cache: VectorCache) -> Scheduler:
    """The app's scheduler: fleet-wide single-flight and rate budget when the cache is tiered."""
    kwargs: dict[str, Any] = {
        "store": cache.set_many,
        "store_health": cache.health,
        "workers": settings.server.workers,
    }
    if not isinstance(cache, TieredCache):
        return Scheduler(upstream, settings.upstream, **kwargs)
    scheduler = FleetScheduler(
        upstream,
        settings.upstream,
        leases=Leases(cache.shared),
        local_store=cache.set_local,
        **kwargs,
    )
    if settings.shared.rate_budget:  # also with no limits set: a 429's hold is fleet-wide
        limits = settings.upstream
        budget = FleetBudget(cache.shared, limits.requests_per_minute, limits.tokens_per_minute)
        scheduler.limiter.shared = budget
    return scheduler
