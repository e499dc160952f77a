"""ViewCache: wire rows of hot vectors, so a repeated hit skips truncation and encoding."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.api.encoding.slices import in_slices, rows_per_slice
from gateway.api.encoding.vector_json import wire_rows
from gateway.core.lru import ByteLRU
from gateway.core.vectors import derive

Row = str | msgspec.Raw
ViewKey = tuple[bytes, int, str, str, bool]


class ViewCache:
    """An LRU of (content key, dims, dtype, encoding, normalize) -> the row as it goes on the wire.

    A stored vector never changes for its key, so neither does any view of it; the memo is only a
    cost cut and is bounded in bytes (0 turns it off).
    """

    def __init__(self, budget_bytes: int, *, generation: Callable[[], int] = lambda: 0) -> None:
        self._rows: ByteLRU[ViewKey, Row] = ByteLRU(budget_bytes, len)
        # Rows are views of cached vectors: after a prune or rewrite (the cache's generation
        # moves) they go with them.
        self._generation = generation
        self._filled_at = generation()

    def rows(
        self,
        keys: Sequence[bytes],
        vectors: NDArray[np.float32],
        dims: int,
        dtype: str,
        encoding: str,
        *,
        normalize: bool = True,
    ) -> list[Row]:
        """The wire rows for `vectors` (one per key, in order), computing only the missing views."""
        if not self._rows.enabled:
            return list(wire_rows(derive(vectors, dims, dtype, normalize=normalize), encoding))
        memo = self._rows
        generation = self._generation()
        if generation != self._filled_at:
            memo.clear()
            self._filled_at = generation
        view_keys = [(key, dims, dtype, encoding, normalize) for key in keys]
        out: list[Row | None] = [memo.peek(vk) for vk in view_keys]
        todo = [i for i, row in enumerate(out) if row is None]
        if todo:
            block = vectors if len(todo) == len(keys) else vectors[todo]
            fresh = wire_rows(derive(block, dims, dtype, normalize=normalize), encoding)
            for i, row in zip(todo, fresh, strict=True):
                out[i] = row
                memo.put(view_keys[i], row)
        if len(todo) < len(keys):
            fresh_rows = set(todo)
            for i, vk in enumerate(view_keys):
                if i not in fresh_rows:
                    memo.touch(vk)
        return out  # type: ignore[return-value]

    async def rows_sliced(
        self,
        keys: Sequence[bytes],
        vectors: NDArray[np.float32],
        dims: int,
        dtype: str,
        encoding: str,
        *,
        normalize: bool = True,
    ) -> list[Row]:
        """As `rows`, a slice at a time when the answer is large (see slices.py)."""
        step = rows_per_slice(dims, dtype, encoding)
        if len(keys) <= step:  # a hit's answer: no closure, no turn
            return self.rows(keys, vectors, dims, dtype, encoding, normalize=normalize)

        def encode(start: int, stop: int) -> list[Row]:
            block = vectors if stop - start == len(keys) else vectors[start:stop]
            return self.rows(keys[start:stop], block, dims, dtype, encoding, normalize=normalize)

        return await in_slices(len(keys), step, encode)

    def clear(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)
