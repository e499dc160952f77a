"""The multi-index hash: exact within the pigeonhole bound, nearest first, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.similar import multihash
from gateway.similar.multihash import MultiIndexHash, plan


def random_codes(count: int, code_bytes: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, code_bytes), dtype=np.uint8)


def spread(code: np.ndarray, per_piece: list[int], rng: np.random.Generator) -> bytes:
    """`code` with per_piece[j] bits flipped inside its j-th 16-bit piece."""
    out = code.copy()
    for piece, flips in enumerate(per_piece):
        for bit in rng.choice(16, flips, replace=False):
            at = piece * 16 + int(bit)
            out[at // 8] ^= np.uint8(1 << (at % 8))
    return out.tobytes()


@pytest.fixture(scope="module")
def images() -> tuple[MultiIndexHash, np.ndarray]:
    """200k random 256-bit prints in the tables (labels 1..200k)."""
    codes = random_codes(200_000, 32)
    table = MultiIndexHash(32)
    table.add(np.arange(1, len(codes) + 1, dtype=np.int64), codes)
    return table, codes


def test_every_image_print_within_the_bound_is_found_among_200k(
    images: tuple[MultiIndexHash, np.ndarray],
) -> None:
    table, codes = images
    radius = 47  # 16 pieces, probe 2 at 200k: some piece is within 2 bits of the query's
    assert plan(32, len(codes), radius) == 2 and table.exact(radius)
    rng = np.random.default_rng(5)
    for row in rng.integers(0, len(codes), 40):
        # the worst case for the tables: every piece changed, all but one by 3 bits
        worst = [3] * 16
        worst[int(rng.integers(16))] = 2
        for query in (spread(codes[row], worst, rng), spread(codes[row], [1] * 16, rng)):
            found = table.search(query, 8, radius)
            assert found[0][0] == row + 1 and found[0][1] in (16, 47)
    assert table.search(spread(codes[9], [3] * 16, rng), 8, radius) == []  # 48 bits: outside


def test_text_prints_within_the_bound_are_found_through_the_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(multihash, "WORD_NS", 10**6)  # the tables even where a scan would do
    codes = random_codes(200_000, 8, seed=6)
    table = MultiIndexHash(8)
    table.add(np.arange(1, len(codes) + 1, dtype=np.int64), codes)
    radius = 11  # 4 pieces, probe 2
    assert table.exact(radius) and not table.exact(16)
    rng = np.random.default_rng(7)
    for row in rng.integers(0, len(codes), 60):
        query = spread(codes[row], [3, 3, 3, 2], rng)
        assert (row + 1, 11) in table.search(query, 8, radius)


def test_a_small_group_is_scanned_exactly_at_any_radius_and_holds_no_tables() -> None:
    codes = random_codes(20_000, 32)
    table = MultiIndexHash(32)
    table.add(np.arange(1, 20_001, dtype=np.int64), codes)
    assert table.exact(256) and table.sorted == 0
    assert table.nbytes() < 1_000_000  # 20k codes and labels; no 8 MiB of offsets per group
    query = spread(codes[42], [4] * 16, np.random.default_rng(1))  # 64 bits: no piece equal
    assert table.search(query, 1, 64) == [(43, 64)]


def test_the_nearest_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multihash, "WORD_NS", 10**6)  # no whole scan: the tables and the tail
    monkeypatch.setattr(multihash, "TAIL", 64)
    codes = random_codes(3000, 32)
    base = codes[100]
    rng = np.random.default_rng(2)
    near = [spread(base, [d] + [0] * 15, rng) for d in (5, 1, 9, 1)]
    table = MultiIndexHash(32)
    table.add(np.arange(1, 3001, dtype=np.int64), codes)
    table.add(np.arange(3001, 3005, dtype=np.int64), np.frombuffer(b"".join(near), np.uint8))
    assert table.sorted == 3000 and table.size == 3004  # the newest four wait in the tail
    expected = [(101, 0), (3002, 1), (3004, 1), (3001, 5)]
    assert table.search(base.tobytes(), 4, 8) == expected  # ties by label
    assert table.search(base.tobytes(), 2, 8) == expected[:2]
    table.remove([3002, 101])
    assert table.search(base.tobytes(), 4, 9) == [(3004, 1), (3001, 5), (3003, 9)]


def test_removed_rows_are_compacted_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multihash, "TAIL", 16)
    codes = random_codes(400, 32)
    table = MultiIndexHash(32)
    table.add(np.arange(1, 401, dtype=np.int64), codes)
    table.remove([5, 5])  # one label named twice counts once
    assert len(table) == 399 and table.dead == 1
    table.remove([*range(1, 301), 400])  # most of them, the newest too: rebuilt from 99 left
    assert len(table) == 99 and table.size == 99 and table.dead == 0
    assert table.top == 400  # catching up still starts after the newest ever added
    assert table.search(codes[350].tobytes(), 1, 0) == [(351, 0)]
    assert table.search(codes[10].tobytes(), 1, 0) == []
    assert table.search(codes[399].tobytes(), 1, 0) == []
    table.add(np.array([401], dtype=np.int64), codes[:1])
    assert table.search(codes[0].tobytes(), 1, 0) == [(401, 0)]


def test_the_plan_is_exact_while_it_fits_and_then_the_widest_probe_that_does() -> None:
    assert plan(32, 100_000, 48) is None  # a whole scan: exact at the default radius
    assert plan(32, 200_000, 48) == 2  # exact to 47 bits
    assert plan(32, 1_000_000, 48) == 1  # exact to 31 bits; beyond, measured recall
    assert plan(32, 1_000_000, 15) == 0  # within 15 bits an equal piece is enough: exact
    assert plan(8, 300_000, 16) is None  # 64-bit text prints: scanned whole
    assert plan(8, 1_000_000, 16) == 2  # and exact to 11 bits at 1 M


def test_skewed_pieces_fall_back_to_an_exact_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat screen areas give dHash pieces of 0x0000: the plan's rows / 65,536 per value does not
    hold, and gathering every candidate sharing a blank piece would cost more than a scan."""
    monkeypatch.setattr(multihash, "BUDGET_NS", 20_000)  # the tables at this size
    codes = random_codes(20_000, 32, seed=8)
    codes[::2, :8] = 0  # half the prints: their first 4 pieces blank
    table = MultiIndexHash(32)
    table.add(np.arange(1, len(codes) + 1, dtype=np.int64), codes)
    assert plan(32, len(codes), 40) is not None  # the tables, by the plan
    rng = np.random.default_rng(9)
    query = spread(codes[10], [0] * 4 + [1] * 12, rng)  # blank pieces kept, 12 bits off
    assert table.search(query, 1, 40) == [(11, 12)]
    assert table.scans_for_skew == 1  # a scan, not ~40,000 candidates
    plain = spread(codes[11], [1] * 16, rng)  # an ordinary print goes through the tables
    assert table.search(plain, 1, 40) == [(12, 16)]
    assert table.scans_for_skew == 1
