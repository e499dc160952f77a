"""ByteLRU: the one byte-bounded LRU behind the hot tier, the view rows and the response memo."""

from __future__ import annotations

from gateway.core.lru import ByteLRU


def test_evicts_least_recently_used_first_to_stay_within_budget() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(10, len)
    lru.put("a", b"1234")
    lru.put("b", b"1234")
    assert lru.get("a") == b"1234"  # a is now the most recent
    lru.put("c", b"1234")  # 12 bytes > 10: b goes, not a
    assert "b" not in lru
    assert lru.get("a") == b"1234" and lru.get("c") == b"1234"
    assert lru.used == 8


def test_peek_keeps_recency_touch_updates_it() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(8, len)
    lru.put("a", b"1234")
    lru.put("b", b"1234")
    assert lru.peek("a") == b"1234"
    lru.put("c", b"1234")  # a was only peeked: it is the oldest and goes
    assert "a" not in lru
    lru.touch("b")
    lru.put("d", b"1234")
    assert "c" not in lru and "b" in lru


def test_entry_cap_and_zero_budget_keep_nothing_too_big() -> None:
    capped: ByteLRU[str, bytes] = ByteLRU(100, len, entry_cap=10)
    capped.put("big", b"x" * 11)
    assert "big" not in capped and capped.used == 0
    off: ByteLRU[str, bytes] = ByteLRU(0, len)
    off.put("a", b"1")
    assert not off.enabled and len(off) == 0


def test_discard_and_clear_return_the_bytes() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(100, len)
    lru.put("a", b"123")
    lru.put("b", b"45")
    lru.discard("a")
    assert lru.used == 2 and len(lru) == 1
    lru.put("b", b"999999")  # a held key is not replaced
    assert lru.get("b") == b"45"
    lru.clear()
    assert lru.used == 0 and len(lru) == 0
