"""The use case: content keys -> cache -> scheduler for unique misses -> store -> full vectors.

Failures come back from the scheduler as data (`Failure` records shared by every request that
waited on the same item); this is where one request's exception is built, fresh, with its own
input indices, so no two requests ever raise, mutate or log the same exception object.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.cache.store import Cached, VectorCache
from gateway.config import ModelSpec, Settings
from gateway.content.keys import content_key
from gateway.content.model import Content, EmbedParams, estimate_tokens
from gateway.core.vectors import is_valid_row
from gateway.errors import CacheMiss, GatewayError, UpstreamError, UpstreamRejected
from gateway.observability.logs import flush_logs
from gateway.similar.service import Probe, SimilarInputs
from gateway.upstream.outcome import Failure
from gateway.upstream.scheduler import Scheduler

# Hashing more than this many media bytes moves to a worker thread, off the event loop.
_HASH_OFF_LOOP_BYTES = 256 * 1024


class Embedded(msgspec.Struct, frozen=True, gc=False):
    """One request's answer: full vectors in input order, their tokens, and where they came from;
    `unstored` inputs were fetched but could not be written to the cache."""

    vectors: NDArray[np.float32]
    tokens: list[int]
    hits: int
    misses: int
    keys: list[bytes]  # each vector's key: an input served another's vector has that one's
    unstored: int = 0
    near: tuple[tuple[int, float], ...] = ()  # (input index, similarity) served near


class EmbedObserver(Protocol):
    """Sees every lookup's hits and misses, and how long misses waited (metrics, log fields)."""

    def looked_up(
        self,
        spec: ModelSpec,
        contents: Sequence[Content],
        keys: Sequence[bytes],
        found: Mapping[bytes, Cached],
    ) -> None: ...

    def fetched(self, seconds: float) -> None: ...

    def reused(self, spec: ModelSpec, reuses: Sequence[tuple[Content, str, float]]) -> None:
        """Inputs served through another key's vector: (content, stage, similarity)."""


class Embedder:
    """Serves every input from the cache when it can and sends only unique misses upstream."""

    def __init__(
        self, settings: Settings, cache: VectorCache, scheduler: Scheduler | None, namespace: str
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.scheduler = scheduler
        self.namespace = namespace
        self.observer: EmbedObserver | None = None
        self.similar: SimilarInputs | None = None  # [near_duplicates]: only when a stage is on
        if settings.near_duplicates.enabled:
            path = Path(cache.directory) / "similar" / "near.sqlite3"
            self.similar = SimilarInputs(settings.near_duplicates, path, writes=not cache.read_only)

    @property
    def online(self) -> bool:
        return self.scheduler is not None

    def params(
        self,
        spec: ModelSpec,
        *,
        task_type: str | None = None,
        title: str | None = None,
        dims: int | None = None,
    ) -> EmbedParams:
        """The key-relevant parameters; the size joins them only when MRL is left to upstream."""
        upstream_dims = dims if self.settings.embeddings.mrl == "upstream" else None
        return EmbedParams(
            model=spec.upstream_id,
            task_type=task_type,
            title=title,
            dims=upstream_dims,
            namespace=self.namespace,
        )

    async def embed(
        self,
        contents: Sequence[Content],
        spec: ModelSpec,
        params: EmbedParams,
        *,
        near: bool | None = None,
    ) -> Embedded:
        """Full vectors (n, fetched dims) for `contents`, in order; `near` is the request's
        near-duplicate switch (None: the deployment's default)."""
        keys = await self._keys(contents, params)
        unique: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            unique.setdefault(key, index)
        found = self.cache.get_hot(unique)
        if len(found) < len(unique):
            found = await self.cache.get_many(unique)
        missing = {k: contents[i] for k, i in unique.items() if k not in found}
        if missing:
            # Another request may have stored some while we read the disk. The scheduler settles
            # a key only after storing it, and nothing awaits between this look-up and its
            # `embed`, so a key is seen either here or in flight there: never fetched twice.
            found.update(self.cache.get_hot(missing))
            missing = {k: c for k, c in missing.items() if k not in found}
        probe = None
        if missing and self.similar is not None:
            probe, missing = await self._similar(self.similar, missing, params, near, found)
        near_items: tuple[tuple[int, float], ...] = ()
        if probe is not None and probe.reused:
            near_items = self._reused(spec, contents, keys, probe)
        observer = self.observer
        if observer is not None:
            observer.looked_up(spec, contents, keys, found)
        unstored = 0
        if missing:
            started = time.perf_counter()
            try:
                not_stored = await self._fetch(missing, keys, spec, params, found)
            finally:
                if observer is not None:
                    observer.fetched(time.perf_counter() - started)
            if not_stored:
                unstored = sum(1 for key in keys if key in not_stored)
                flush_logs()  # the write failure's warning goes out now, not with the next batch
            if probe is not None and self.similar is not None:
                await self.similar.learn(probe, set(missing) - not_stored, params)
        hits = sum(1 for key in keys if key not in missing)
        if len(keys) == 1:
            vectors = found[keys[0]].vector[None, :]
        else:
            vectors = np.stack([found[key].vector for key in keys]) if keys else _empty(spec)
        tokens = [found[key].tokens for key in keys]
        misses = len(keys) - hits
        if probe is not None and probe.reused:  # the served vector's key: views memoise by it
            keys = [probe.reused[k].target if k in probe.reused else k for k in keys]
        return Embedded(
            vectors, tokens, hits=hits, misses=misses, keys=keys, unstored=unstored, near=near_items
        )

    async def _similar(
        self,
        similar: SimilarInputs,
        missing: dict[bytes, Content],
        params: EmbedParams,
        near: bool | None,
        found: dict[bytes, Cached],
    ) -> tuple[Probe, dict[bytes, Content]]:
        """Serve what canonical and near aliases can into `found`; the probe and what is left."""
        probe = await similar.find(missing, params, similar.allowed(near))
        targets = {reuse.target for reuse in probe.reused.values()}
        if targets:
            stored = await self.cache.get_many(targets)
            for key, reuse in list(probe.reused.items()):
                if reuse.target in stored:
                    found[key] = stored[reuse.target]
                else:  # the matched vector was evicted: this input goes upstream
                    del probe.reused[key]
        # As above: what another request stored meanwhile is served, not fetched twice.
        found.update(self.cache.get_hot(k for k in missing if k not in found))
        return probe, {k: c for k, c in missing.items() if k not in found}

    def _reused(
        self,
        spec: ModelSpec,
        contents: Sequence[Content],
        keys: list[bytes],
        probe: Probe,
    ) -> tuple[tuple[int, float], ...]:
        """Tell the observer what was reused; the near items, by input index."""
        reused = probe.reused
        near = tuple(
            (i, reused[k].similarity)
            for i, k in enumerate(keys)
            if k in reused and reused[k].stage != "canonical"
        )
        if self.observer is not None:
            seen = {k: i for i, k in enumerate(keys) if k in reused}
            entries = [
                (contents[i], reused[k].stage, reused[k].similarity) for k, i in seen.items()
            ]
            self.observer.reused(spec, entries)
        return near

    async def _keys(self, contents: Sequence[Content], params: EmbedParams) -> list[bytes]:
        if sum(c.payload_bytes for c in contents) < _HASH_OFF_LOOP_BYTES:
            return [content_key(c, params) for c in contents]
        return await asyncio.to_thread(lambda: [content_key(c, params) for c in contents])

    async def _fetch(
        self,
        missing: dict[bytes, Content],
        keys: list[bytes],
        spec: ModelSpec,
        params: EmbedParams,
        found: dict[bytes, Cached],
    ) -> set[bytes]:
        """Fetch `missing` into `found`; the keys served but not stored (the write failed)."""
        if self.scheduler is None:
            failed = tuple(i for i, k in enumerate(keys) if k in missing)
            reason = "cache-only mode and not cached"
            where = ", ".join(f"input[{i}]" for i in failed)
            raise CacheMiss(f"{reason}: {where}", failed=failed, reason=reason)
        dims = params.dims or spec.dims
        results = await self.scheduler.embed(missing, params, dims)
        good: dict[bytes, Cached] = {}
        failures: dict[bytes, Failure] = {}
        unstored: set[bytes] = set()
        for key, outcome in results.items():
            if isinstance(outcome, Failure):
                failures[key] = outcome
            elif is_valid_row(outcome.vector, dims):
                good[key] = Cached(_readonly(outcome.vector), estimate_tokens(missing[key]))
                if not outcome.stored:
                    unstored.add(key)
            else:
                failures[key] = _INVALID
        if self.scheduler.store is None and good:  # else the scheduler stored them already
            try:
                await self.cache.set_many(params.model, good)
            except Exception as exc:  # good vectors: serve them, and say they were not stored
                self.cache.health.write_failed(len(good), exc)
                unstored.update(good)
            else:
                self.cache.health.write_succeeded()
        found.update(good)
        if failures:
            raise _combined(failures, keys)
        return unstored


_INVALID = Failure.of(UpstreamError("the upstream returned an invalid vector"))


def _readonly(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    out = np.ascontiguousarray(vector, dtype=np.float32)
    out.flags.writeable = False
    return out


def _empty(spec: ModelSpec) -> NDArray[np.float32]:
    return np.zeros((0, spec.dims), dtype=np.float32)


def _combined(failures: dict[bytes, Failure], keys: list[bytes]) -> GatewayError:
    """This request's error, new: the first failure, naming every failed input index."""
    failed = tuple(i for i, key in enumerate(keys) if key in failures)
    first = failures[keys[failed[0]]]
    if issubclass(first.kind, UpstreamRejected):
        where = ", ".join(f"input[{i}]" for i in failed)
        return UpstreamRejected(
            f"{first.message} (failed: {where})",
            failed=failed,
            param=f"input[{failed[0]}]",
            reason=first.message,
        )
    return first.error()
