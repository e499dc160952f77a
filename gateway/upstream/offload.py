"""Decoding large upstream answers in a worker process, so a hit never waits behind a miss's parse.

A 100 x 3072 answer is ~4-7 MB of float text: ~15 ms of msgspec even at its best, and all of it
holds the GIL, so a thread would not help the serving loop. A worker process gets the body (one
memcpy into the pipe) and returns float32 rows (12 KB a vector); the serving process's part is
those two copies. Small answers (a few vectors) are decoded in place: the hop would cost more.

The pool starts on first use with the forkserver method (no fork of a running event loop and its
threads) and is shut down by `aclose`. A worker that dies answers UpstreamError for that call
and the pool is rebuilt for the next one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from numpy.typing import NDArray

from gateway.errors import UpstreamError
from gateway.upstream.decode import decode_batch


def _ready() -> None:
    """The first task of each worker: starts it while __main__ is hidden (see _start)."""


# Below this, decoding in place is cheaper than the hop (~0.3 ms of pipe and pickling).
OFFLOAD_MIN_BYTES = 256 * 1024


class BatchDecoder:
    """Decodes answers in place when small, in `workers` processes when large (0: never)."""

    def __init__(self, workers: int = 1, min_bytes: int = OFFLOAD_MIN_BYTES) -> None:
        self.workers = workers
        self.min_bytes = min_bytes
        self.offloaded = 0  # answers decoded in a worker (tests and metrics read it)
        self._pool: ProcessPoolExecutor | None = None

    async def decode(
        self, body: bytes, count: int, dims: int, encoding: str = ""
    ) -> NDArray[np.float32]:
        """The (count, dims) float32 vectors of a 200 answer, or UpstreamError."""
        if self.workers <= 0 or len(body) * (1 if encoding in ("", "identity") else 4) < (
            self.min_bytes
        ):
            return decode_batch(body, count, dims, encoding)
        pool = self._pool or self._start()
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(
                pool, decode_batch, body, count, dims, encoding
            )
        except BrokenProcessPool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise UpstreamError("the answer's decoder process died; the pool restarts") from None
        self.offloaded += 1
        return vectors

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        # A new worker re-imports the parent's __main__ script unless it has none: a script
        # without an `if __name__ == "__main__"` guard would run again in it. The workers start
        # in `submit`, synchronously, so __main__ is hidden only for these calls.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            for _ in range(self.workers):
                pool.submit(_ready)
        finally:
            sys.modules["__main__"] = main
        self._pool = pool
        return pool

    def close(self) -> None:
        """Stop the workers (an answer still being decoded is dropped: its call is over)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
