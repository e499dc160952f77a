"""Concurrent unfiltered searches of a small collection share one BLAS call.

The exact path scans every row; for one query that is a matrix-vector product bound by memory
bandwidth, for many it is one matrix-matrix product that reads the rows once (bench_index: 3-10x
the throughput of one query at a time). A search that finds no batch running starts one at once,
so an idle gateway adds no wait; searches arriving while it runs form the next batch.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from gateway.vectorstore.flat import Matrix
from gateway.vectorstore.search import Hit

if TYPE_CHECKING:
    from gateway.vectorstore.collection import Collection


class ExactBatcher:
    """One per collection: queues (query, k) pairs and answers them a batch at a time."""

    def __init__(self, collection: Collection, executor: Executor) -> None:
        self.collection = collection
        self._executor = executor
        self._pending: list[tuple[Matrix, int, asyncio.Future[list[Hit]]]] = []
        self._task: asyncio.Task[None] | None = None

    async def search(self, query: Matrix, k: int) -> list[Hit]:
        """The k best items for one unit query, computed with whatever else is waiting."""
        future: asyncio.Future[list[Hit]] = asyncio.get_running_loop().create_future()
        self._pending.append((query, k, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self._executor,
                    self.collection.search_many,
                    [q for q, _, _ in batch],
                    [k for _, k, _ in batch],
                )
            except Exception as exc:  # every waiter of this batch gets the error
                _settle(batch, error=exc)
                continue
            _settle(batch, results=results)


def _settle(
    batch: list[tuple[Matrix, int, asyncio.Future[list[Hit]]]],
    *,
    results: list[list[Hit]] | None = None,
    error: BaseException | None = None,
) -> None:
    for i, (_, _, future) in enumerate(batch):
        if future.done():  # the caller went away
            continue
        if results is not None:
            future.set_result(results[i])
        else:
            future.set_exception(error or RuntimeError("search failed"))
