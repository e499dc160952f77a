"""ViewCache: wire rows of hot vectors, so a repeated hit skips truncation and encoding."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from gateway.api.encoding.vector_json import encode_rows
from gateway.core.vectors import derive

Row = str | msgspec.Raw
ViewKey = tuple[bytes, int, str, str, bool]


class ViewCache:
    """An LRU of (content key, dims, dtype, encoding, normalize) -> the row as it goes on the wire.

    A stored vector never changes for its key, so neither does any view of it; the memo is only a
    cost cut and is bounded in bytes (0 turns it off).
    """

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._used = 0
        self._rows: OrderedDict[ViewKey, Row] = OrderedDict()

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
        if self._budget <= 0:
            return list(encode_rows(derive(vectors, dims, dtype, normalize=normalize), encoding))
        memo = self._rows
        view_keys = [(key, dims, dtype, encoding, normalize) for key in keys]
        out: list[Row | None] = [memo.get(vk) for vk in view_keys]
        todo = [i for i, row in enumerate(out) if row is None]
        if todo:
            block = vectors if len(todo) == len(keys) else vectors[todo]
            fresh = encode_rows(derive(block, dims, dtype, normalize=normalize), encoding)
            for i, row in zip(todo, fresh, strict=True):
                out[i] = row
                self._put(view_keys[i], row)
        if len(todo) < len(keys):
            fresh_rows = set(todo)
            for i, vk in enumerate(view_keys):
                if i not in fresh_rows:
                    memo.move_to_end(vk)
        return out  # type: ignore[return-value]

    def _put(self, key: ViewKey, row: Row) -> None:
        if key in self._rows:
            return
        self._rows[key] = row
        self._used += len(row)
        while self._used > self._budget and self._rows:
            _, old = self._rows.popitem(last=False)
            self._used -= len(old)

    def clear(self) -> None:
        self._rows.clear()
        self._used = 0

    def __len__(self) -> int:
        return len(self._rows)
