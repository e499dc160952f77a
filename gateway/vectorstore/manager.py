"""CollectionManager: the collections directory, and the async face the HTTP routes use.

Blocking calls run in three thread pools, so no kind of work can starve another: searches have
their own, writes and catalog changes theirs, and index loads, rebuilds and autosaves a small
background pool (at most BUILD_SLOTS builds at once, one thread always left for saves). Per
collection, one asyncio lock queues writers so they never tie up pool threads waiting on each
other; searches do not take it. Loading or rebuilding an index happens in the background after
start-up: requests for that collection wait for it, `GET` shows its progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import structlog

from gateway.config import Settings
from gateway.errors import CollectionUnavailable, Conflict, NotFound, StoreError
from gateway.vectorstore.batching import ExactBatcher
from gateway.vectorstore.collection import Collection
from gateway.vectorstore.filters import check_filter
from gateway.vectorstore.flat import Matrix
from gateway.vectorstore.persist import fsync_path, remove_leftovers
from gateway.vectorstore.search import Hit
from gateway.vectorstore.spec import CollectionSpec
from gateway.vectorstore.store import ItemStore, NewItem

log = structlog.get_logger("gateway.vectorstore")
T = TypeVar("T")
_CREATING, _DELETING = ".creating-", ".deleted-"
# Searches are short and release the GIL in BLAS and usearch; writes are serialised per collection.
SEARCH_THREADS, WRITE_THREADS = 4, 2
# Index loads and rebuilds at once; the background pool has one thread more, for autosaves.
BUILD_SLOTS = 2


class CollectionManager:
    """Named collections under one directory; open at start-up, closed (and saved) at shutdown."""

    def __init__(self, settings: Settings) -> None:
        config = settings.collections
        self.settings = config
        self.root = Path(config.dir) if config.dir else Path(settings.cache.dir) / "collections"
        self._workers = settings.server.workers
        self._collections: dict[str, Collection] = {}
        self._ready: dict[str, asyncio.Task[None]] = {}
        self._writers: dict[str, asyncio.Lock] = {}
        self._batchers: dict[str, ExactBatcher] = {}
        self._catalog = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._searches = ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="collections-search")
        self._writes = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="collections-write")
        self._builds = ThreadPoolExecutor(BUILD_SLOTS + 1, thread_name_prefix="collections-build")
        self._build_slots = asyncio.Semaphore(BUILD_SLOTS)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """A write or catalog change, on the write pool."""
        return await asyncio.get_running_loop().run_in_executor(self._writes, fn, *args)

    async def _search(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._searches, fn, *args)

    async def _build(self, fn: Callable[..., T], *args: Any) -> T:
        """An index load or rebuild: waits for one of BUILD_SLOTS, then runs in the background."""
        async with self._build_slots:
            return await asyncio.get_running_loop().run_in_executor(self._builds, fn, *args)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open every collection on disk and start loading their indexes in the background."""
        if self._workers > 1:
            log.warning(
                "collections keep their index in one process; with several workers, "
                "writes through one are not seen by the others' searches: use workers = 1",
                workers=self._workers,
            )
        for collection in await self._run(self._open_all):
            self._register(collection)
            self._ready[collection.spec.name] = self._spawn(self._prepare(collection))
        if self.settings.autosave_s > 0:
            self._spawn(self._autosave())

    def _open_all(self) -> list[Collection]:
        if not self.root.is_dir():
            return []
        remove_leftovers(self.root)
        found: list[Collection] = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith((_CREATING, _DELETING)):
                shutil.rmtree(path, ignore_errors=True)  # a create or delete a crash cut short
            elif path.is_dir() and not path.name.startswith("."):
                try:
                    store = ItemStore.open(path)
                except StoreError as exc:
                    log.error("collection skipped", collection=path.name, error=str(exc))
                    continue
                remove_leftovers(path)
                found.append(Collection(path, store, self.settings))
        return found

    def _register(self, collection: Collection) -> None:
        name = collection.spec.name
        self._collections[name] = collection
        self._writers[name] = asyncio.Lock()

    async def _prepare(self, collection: Collection) -> None:
        try:
            await self._build(collection.prepare)
        except Exception as exc:
            collection.mark_failed()
            log.error("collection index failed", collection=collection.spec.name, error=repr(exc))
            raise CollectionUnavailable(
                f"the collection `{collection.spec.name}` could not be loaded; see the log"
            ) from exc

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.settings.autosave_s)
            for name, collection in list(self._collections.items()):
                if collection.status != "ready":
                    continue
                async with self._writers[name]:  # a thread is free: builds leave one
                    await asyncio.get_running_loop().run_in_executor(self._builds, collection.save)

    async def close(self) -> None:
        """Stop background work, save changed indexes and close every store."""
        for task in list(self._background):
            if task not in self._ready.values():
                task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a rebuild in a thread cannot be cancelled: let it finish
        for collection in list(self._collections.values()):
            await self._run(collection.close)
        self._collections.clear()
        for pool in (self._searches, self._writes, self._builds):
            pool.shutdown(wait=True)

    # -- catalog -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Collection names, sorted."""
        return sorted(self._collections)

    def peek(self, name: str) -> Collection:
        """The collection, ready or not; a 404 if there is none by that name."""
        collection = self._collections.get(name)
        if collection is None:
            raise NotFound(
                f"the collection `{name}` does not exist", param="name", code="collection_not_found"
            )
        return collection

    async def get(self, name: str) -> Collection:
        """The collection once its index is loaded."""
        collection = self.peek(name)
        ready = self._ready.get(name)
        if ready is not None and not ready.done():
            await asyncio.shield(ready)
        elif ready is not None and ready.exception() is not None:
            raise CollectionUnavailable(f"the collection `{name}` could not be loaded; see the log")
        return collection

    async def create(self, spec: CollectionSpec) -> Collection:
        """Create an empty collection; a 409 if the name is taken."""
        async with self._catalog:
            if spec.name in self._collections or (self.root / spec.name).exists():
                raise Conflict(
                    f"a collection named `{spec.name}` already exists",
                    param="name",
                    code="collection_exists",
                )
            spec = msgspec.structs.replace(spec, created=int(time.time()))
            collection = await self._run(self._create_on_disk, spec)
            self._register(collection)
            return collection

    def _create_on_disk(self, spec: CollectionSpec) -> Collection:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f"{_CREATING}{spec.name}-{secrets.token_hex(4)}"
        staging.mkdir()
        ItemStore.create(staging, spec).close()
        fsync_path(staging)
        final = self.root / spec.name
        staging.rename(final)  # the collection appears whole or not at all
        fsync_path(self.root)
        collection = Collection(final, ItemStore.open(final), self.settings)
        collection.prepare()
        return collection

    async def delete(self, name: str) -> None:
        """Delete a collection and its files; a 404 if there is none."""
        async with self._catalog:
            collection = self.peek(name)
            async with self._writers[name]:
                ready = self._ready.pop(name, None)
                if ready is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(ready)
                del self._collections[name]
                self._batchers.pop(name, None)
                await self._run(self._delete_on_disk, collection)

    def _delete_on_disk(self, collection: Collection) -> None:
        collection.close(save=False)
        doomed = self.root / f"{_DELETING}{collection.spec.name}-{secrets.token_hex(4)}"
        collection.directory.rename(doomed)
        fsync_path(self.root)
        shutil.rmtree(doomed, ignore_errors=True)

    # -- items -------------------------------------------------------------------------------

    async def put(self, name: str, items: list[NewItem], vectors: Matrix) -> int:
        """Insert or replace items; returns once they are durable."""
        collection = await self.get(name)
        async with self._writers[name]:
            replaced = await self._run(collection.put, items, vectors)
        self._after_write(collection)
        return replaced

    async def delete_items(self, name: str, ids: list[str]) -> int:
        """Delete items by id; how many existed."""
        collection = await self.get(name)
        async with self._writers[name]:
            deleted = await self._run(collection.delete, ids)
        self._after_write(collection)
        return deleted

    async def search(
        self,
        name: str,
        query: Matrix,
        k: int,
        where: dict[str, Any] | None,
        rescore: bool | None,
    ) -> list[Hit]:
        """The k best items for a unit query vector."""
        where = check_filter(where)  # a bad filter costs no thread and no wait for the index
        collection = await self.get(name)
        if not where and rescore is None and collection.dense is not None:
            batcher = self._batchers.get(name)
            if batcher is None or batcher.collection is not collection:
                batcher = ExactBatcher(collection, self._searches)
                self._batchers[name] = batcher
            return await batcher.search(query, k)
        return await self._search(collection.search, query, k, where, rescore)

    async def search_by_item(
        self,
        name: str,
        item_id: str,
        k: int,
        where: dict[str, Any] | None,
        rescore: bool | None,
    ) -> list[Hit]:
        """The k items most like an existing one ("more like this"): its stored vector is the
        query and the item itself is left out; a 404 naming `id` if there is no such item."""
        where = check_filter(where)
        collection = await self.get(name)
        query = await self._search(collection.vector_of, item_id)
        if query is None:
            raise NotFound(
                f"the collection `{name}` has no item with the id {item_id!r}",
                param="id",
                code="item_not_found",
            )
        hits = await self.search(name, query, k + 1, where, rescore)  # one more: the item
        return [hit for hit in hits if hit.id != item_id][:k]

    def _after_write(self, collection: Collection) -> None:
        """Start a background index build when the collection outgrew the exact path, or a
        compaction when deletes left too many dead slots; one at a time per collection."""
        if collection.status != "ready":
            return
        if collection.wants_index:
            reason = "size"
        elif collection.needs_compaction():
            reason = "compaction"
        else:
            return
        if collection.begin_rebuild(reason):
            self._spawn(self._rebuild(collection, reason))

    async def _rebuild(self, collection: Collection, reason: str) -> None:
        try:
            await self._build(collection.rebuild, reason)
        except Exception as exc:  # the old index keeps serving; the next write retries
            if not collection.closed:
                log.error(
                    "collection index build failed",
                    collection=collection.spec.name,
                    error=repr(exc),
                )
