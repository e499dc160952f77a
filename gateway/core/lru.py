"""ByteLRU: the one least-recently-used map bounded in bytes (hot vectors, wire rows, answers)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Keeps values while their `size` adds up to at most `budget` bytes; 0 keeps nothing.

    `entry_cap` refuses single values above it, so one huge value cannot flush everything else.
    Not thread-safe: each owner uses it from one thread (the event loop).
    """

    def __init__(
        self, budget: int, size: Callable[[V], int], *, entry_cap: int | None = None
    ) -> None:
        self.budget = budget
        self._size = size
        self._entry_cap = budget if entry_cap is None else entry_cap
        self._used = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    @property
    def used(self) -> int:
        """Bytes held now."""
        return self._used

    def get(self, key: K) -> V | None:
        """The value, marked as just used; None when absent."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def peek(self, key: K) -> V | None:
        """The value without touching its recency."""
        return self._items.get(key)

    def touch(self, key: K) -> None:
        """Mark a present key as just used."""
        if key in self._items:
            self._items.move_to_end(key)

    def put(self, key: K, value: V) -> None:
        """Keep `value` unless it is over the entry cap or the key is held already."""
        size = self._size(value)
        if self.budget <= 0 or size > self._entry_cap or key in self._items:
            return
        self._items[key] = value
        self._used += size
        while self._used > self.budget and self._items:
            _, old = self._items.popitem(last=False)
            self._used -= self._size(old)

    def discard(self, key: K) -> None:
        """Forget `key` if held."""
        old = self._items.pop(key, None)
        if old is not None:
            self._used -= self._size(old)

    def clear(self) -> None:
        self._items.clear()
        self._used = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
