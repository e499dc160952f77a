"""MultiIndexHash: one group's fingerprints, searched exactly by Hamming distance.

Each code is cut into 16-bit pieces (16 for a 256-bit dHash, 4 for a 64-bit SimHash), and each
piece has a table: the rows sorted by that piece's value plus an offsets array (65,537 entries),
so the rows whose piece equals a value are one slice. A search probes, in every table, the
query's piece and each value within `probe` bits of it; every candidate is then measured with an
exact XOR + popcount over the whole code and cut at the radius. Pigeonhole: a code within `r`
bits of the query over `m` pieces has a piece within floor(r / m) bits of the query's, so the
search is exact whenever `probe >= floor(r / m)`. Each search is planned from the group's size
with a cost model measured on this machine (~90 ns a candidate gathered, ~2 ns a 64-bit word
scanned): the cheaper of the exact ways (a whole scan, or the tables at that probe) when it fits
BUDGET_NS, else the tables at the largest probe that fits, whose recall beyond the bound is
empirical (bench/near_index.py measures it). The newest rows wait in an unsorted tail (always
scanned) and are merged into the tables TAIL at a time. Memory: numpy arrays only, ~110 bytes
per 256-bit print.
"""

from __future__ import annotations

from math import comb

import numpy as np
from numpy.typing import NDArray

PIECE = 16  # bits per piece: 65,536 values, ~15 rows a value at 1 M prints
VALUES = 1 << PIECE
TAIL = 8192  # rows scanned exactly before they are merged into the tables
BUDGET_NS = 800_000  # CPU a search may plan for (the goal: under 1 ms at 1 M prints)
CANDIDATE_NS = 90  # a candidate row gathered from a table and measured
WORD_NS = 2  # a 64-bit word of a whole scan
MAX_PROBE = 3  # bits a piece may differ by in a probe (697 values a table)


def _masks(probe: int) -> NDArray[np.uint16]:
    """Every 16-bit mask of at most `probe` bits set, fewest bits first."""
    values = np.arange(VALUES, dtype=np.uint32)
    weights = np.bitwise_count(values)
    keep = values[weights <= probe]
    return keep[np.argsort(weights[keep], kind="stable")].astype(np.uint16)


def plan(code_bytes: int, rows: int, radius: int) -> int | None:
    """How a group of `rows` codes is searched at `radius`: None for a whole scan (exact),
    else the probe of the tables (exact when it reaches radius // pieces)."""
    pieces, words = code_bytes * 8 // PIECE, code_bytes // 8
    scan = rows * words * WORD_NS

    def tables(probe: int) -> float:
        probes = sum(comb(PIECE, i) for i in range(probe + 1))
        return pieces * probes * rows / VALUES * CANDIDATE_NS

    need = radius // pieces
    exact = [(scan, None)] + ([(tables(need), need)] if need <= MAX_PROBE else [])
    cost, how = min(exact, key=lambda pair: pair[0])
    if cost <= BUDGET_NS:
        return how
    probe = 0
    while probe < min(need, MAX_PROBE) and tables(probe + 1) <= BUDGET_NS:
        probe += 1
    return probe


class MultiIndexHash:
    """Labels (ascending) and codes of one group, with a table per 16-bit piece."""

    def __init__(self, code_bytes: int) -> None:
        if code_bytes % 8:
            raise ValueError("codes are whole 64-bit words")
        self.words = code_bytes // 8
        self.pieces = code_bytes * 8 // PIECE
        self._masks: dict[int, NDArray[np.uint16]] = {}
        self.scans_for_skew = 0  # searches whose candidates would have cost more than a scan
        self._top = 0  # the highest label ever added: a compaction never lowers it
        self._empty()

    def _empty(self) -> None:
        self.codes = np.zeros((0, self.words), dtype=np.uint64)
        self.labels = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)
        self.size = 0  # rows used (alive or not)
        self.dead = 0
        self.sorted = 0  # rows [0, sorted) are in the tables; [sorted, size) are the tail
        self.orders = np.zeros((self.pieces, 0), dtype=np.int32)
        self.offsets = np.zeros((self.pieces, 0), dtype=np.int64)  # none until tables pay

    def __len__(self) -> int:
        return self.size - self.dead

    @property
    def top(self) -> int:
        """The highest label ever added (0: none), removed or not."""
        return self._top

    def add(
        self, labels: NDArray[np.int64], codes: NDArray[np.uint8], *, merge: bool = True
    ) -> None:
        """Append (n, code_bytes) codes whose labels are all above `top`, in ascending order
        (merge=False: a batch of a catch-up, merged once at its end by `settle`)."""
        count = len(labels)
        if count == 0:
            return
        if self.size + count > len(self.labels):
            self._grow(self.size + count)
        end = self.size + count
        self._top = max(self._top, int(labels[-1]))
        self.codes[self.size : end] = np.ascontiguousarray(codes).reshape(count, -1).view(np.uint64)
        self.labels[self.size : end] = labels
        self.alive[self.size : end] = True
        self.size = end
        if merge:
            self.settle()

    def settle(self, *, whole: bool = False) -> None:
        """Merge the tail into the tables once it is long enough (whole: all of it). A group a
        whole scan serves within the budget has no tables at all (8 MiB of offsets saved)."""
        if self.size * self.words * WORD_NS <= BUDGET_NS:
            return
        if self.size - self.sorted >= (1 if whole else TAIL):
            self._merge()

    def _grow(self, need: int) -> None:
        capacity = max(need, 2 * len(self.labels), 1024)
        codes = np.zeros((capacity, self.words), dtype=np.uint64)
        codes[: self.size] = self.codes[: self.size]
        labels = np.zeros(capacity, dtype=np.int64)
        labels[: self.size] = self.labels[: self.size]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self.size] = self.alive[: self.size]
        self.codes, self.labels, self.alive = codes, labels, alive

    def _merge(self) -> None:
        """Insert the tail's rows into every table (stable: equal values stay in row order)."""
        rows = np.arange(self.sorted, self.size, dtype=np.int32)
        pieces = self.codes[self.sorted : self.size].view(np.uint16)
        orders = np.empty((self.pieces, self.size), dtype=np.int32)
        if self.offsets.shape[1] == 0:
            self.offsets = np.zeros((self.pieces, VALUES + 1), dtype=np.int64)
        for j in range(self.pieces):
            values = pieces[:, j]
            order = np.argsort(values, kind="stable")
            new = values[order].astype(np.int64)
            orders[j] = np.insert(self.orders[j], self.offsets[j][new + 1], rows[order])
            self.offsets[j] += np.searchsorted(new, np.arange(VALUES + 1), side="left")
        self.orders = orders
        self.sorted = self.size

    def remove(self, labels: list[int]) -> None:
        """Forget these labels; compact once most rows are dead."""
        wanted = np.unique(np.asarray(labels, dtype=np.int64))  # a label named twice: once
        rows = np.searchsorted(self.labels[: self.size], wanted)
        rows = rows[rows < self.size]
        rows = rows[(self.labels[rows] == wanted[: len(rows)]) & self.alive[rows]]
        self.alive[rows] = False
        self.dead += len(rows)
        if self.dead > max(TAIL, len(self)):
            self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self.alive[: self.size])
        labels, codes = self.labels[keep], self.codes[keep].view(np.uint8)
        self._empty()
        self.add(labels, codes, merge=False)
        self.settle(whole=True)

    def search(self, code: bytes, count: int, radius: int) -> list[tuple[int, int]]:
        """Up to `count` (label, distance) nearest to `code` within `radius`, nearest first."""
        if self.size == 0:
            return []
        query = np.frombuffer(code, dtype=np.uint64)
        probe = plan(self.words * 8, self.size, radius) if self.sorted else None
        found = None if probe is None else self._candidates(query, probe)
        if found is None:
            rows, codes = np.arange(self.size), self.codes[: self.size]
        else:
            rows = np.concatenate((found, np.arange(self.sorted, self.size)))
            codes = self.codes[rows]
        bits = np.bitwise_count(codes ^ query)
        distance = bits[:, 0].astype(np.int64)
        for word in range(1, self.words):
            distance += bits[:, word]
        keep = (distance <= radius) & self.alive[rows]
        rows, first = np.unique(rows[keep], return_index=True)  # a row found by two pieces
        distance = distance[keep][first]
        labels = self.labels[rows]
        order = np.lexsort((labels, distance))[:count]
        return list(zip(labels[order].tolist(), distance[order].tolist(), strict=True))

    def _candidates(self, query: NDArray[np.uint64], probe: int) -> NDArray[np.int64] | None:
        """The table rows sharing a piece within the probe of the query's (a row may come
        more than once: deduplicating the few survivors is cheaper than every candidate);
        None when gathering them would cost more than scanning every row."""
        masks = self._masks.get(probe)
        if masks is None:
            masks = self._masks[probe] = _masks(probe)
        values = (query.view(np.uint16)[:, None] ^ masks[None, :]).astype(np.int64)
        tables = np.arange(self.pieces)[:, None]
        low = self.offsets[tables, values].ravel()
        lengths = self.offsets[tables, values + 1].ravel() - low
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        if total * CANDIDATE_NS > self.size * self.words * WORD_NS:
            # skewed pieces (a blank screen area's dHash pieces are all 0x0000): the plan's
            # rows / 65,536 a value does not hold, and a whole scan is cheaper, and exact
            self.scans_for_skew += 1
            return None
        low += np.repeat(np.arange(self.pieces) * self.sorted, len(masks))  # into orders.ravel()
        starts = np.repeat(low - (np.cumsum(lengths) - lengths), lengths)
        rows: NDArray[np.int64] = self.orders.ravel()[np.arange(total) + starts].astype(np.int64)
        return rows

    def exact(self, radius: int) -> bool:
        """True when a search at `radius` now finds every code within it."""
        probe = plan(self.words * 8, self.size, radius) if self.sorted else None
        return probe is None or probe >= radius // self.pieces

    def nbytes(self) -> int:
        """Bytes held by the arrays (capacity included)."""
        arrays = (self.codes, self.labels, self.alive, self.orders, self.offsets)
        return sum(a.nbytes for a in arrays)
