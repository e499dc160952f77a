"""Large answers encoded a slice of rows at a time, so the serving loop runs between slices.

Encoding holds the GIL: a 100 x 3072 answer is ~14 ms of float text (orjson) or ~1.5 ms of
base64. Done in one go, ten such answers finishing together held a warm hit back by ~100 ms
(bench/bench_mixed.py --probe). Here an answer over one slice (~0.5 ms of work) is encoded slice by
slice; one slice at a time per event loop (a FIFO turn), and between two slices the loop runs
whatever became ready, so a hit waits behind at most one slice, not behind every answer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Work units per slice: one per value written as base64 or as an integer, four per float
# written as text (~45 ns each with orjson). 65,536 units: 5 rows of 3072 floats as text
# (~0.7 ms), 21 rows as base64.
SLICE_UNITS = 65_536

_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def rows_per_slice(width: int, dtype: str, encoding: str) -> int:
    """How many rows of `width` values in `dtype` make one slice when written as `encoding`."""
    units = 4 if encoding == "float" and dtype == "float" else 1
    if dtype.endswith("binary"):
        width = (width + 7) // 8
    return max(1, SLICE_UNITS // max(1, width * units))


def turn() -> asyncio.Lock:
    """The running loop's turn for bulk encoding: held for one slice, waiters served in order."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    return lock


async def in_slices(count: int, step: int, encode: Callable[[int, int], Sequence[T]]) -> list[T]:
    """encode(start, stop) for each slice of range(count), concatenated; the loop runs between."""
    if count <= step:
        return list(encode(0, count))
    out: list[T] = []
    lock = turn()
    for start in range(0, count, step):
        async with lock:
            out.extend(encode(start, min(count, start + step)))
        # Without a waiter the lock is free again at once: yield anyway, so ready requests run.
        await asyncio.sleep(0)
    return out
