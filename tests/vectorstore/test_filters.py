"""Search filters: what SQLite would choke on is a 400 naming the filter, before and at the store."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.errors import InvalidRequest
from gateway.vectorstore import CollectionSpec, NewItem, check_filter
from gateway.vectorstore.store import STORE_FILE, ItemStore


def refused(where: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_filter(where)
    assert caught.value.http_status == 400
    return caught.value


def test_scalar_equality_filters_pass_unchanged() -> None:
    where = {"s": "x", "i": -(2**63), "j": 2**63 - 1, "f": 0.5, "b": True, "z": None, "a b": 1}
    assert check_filter(where) == where
    assert check_filter(None) is None
    assert check_filter({}) == {}


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64 - 1, 10**30])
def test_an_integer_outside_int64_names_its_field(value: int) -> None:
    assert refused({"n": value}).param == "filter.n"


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_number_must_be_finite(value: float) -> None:
    assert refused({"x": value}).param == "filter.x"


@pytest.mark.parametrize("value", [[1, 2], {"deeper": 1}, b"bytes", "x" * (64 * 1024 + 1)])
def test_lists_nesting_and_other_values_name_their_field(value: Any) -> None:
    assert refused({"v": value}).param == "filter.v"


@pytest.mark.parametrize("field", ["", "a\x00b", 'a"b', "a\\b", "tab\there", "x" * 129, 7])
def test_a_field_name_sqlite_cannot_path_names_the_filter(field: Any) -> None:
    error = refused({field: 1})
    assert error.param == "filter" and "field names" in error.message


def test_at_most_64_fields() -> None:
    assert check_filter({f"f{i}": i for i in range(64)}) is not None
    error = refused({f"f{i}": i for i in range(65)})
    assert error.param == "filter" and "65 fields" in error.message
    assert refused(["not", "an", "object"]).param == "filter"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ItemStore]:
    spec = CollectionSpec(name="s", model="gemini-embedding-2", dimensions=4)
    ItemStore.create(tmp_path, spec).close()
    opened = ItemStore.open(tmp_path)
    items = [NewItem(id="a", metadata='{"n": 1, "s": "x"}', content_key=None)]
    opened.put(items, np.ones((1, 4), dtype=np.float32))
    yield opened
    opened.close()


def test_the_store_matches_a_checked_filter(store: ItemStore) -> None:
    assert store.matching({"n": 1, "s": "x"}).tolist() == [1]
    assert store.matching({"n": 1.0}).tolist() == [1]
    assert store.matching({"n": 2}).tolist() == []


@pytest.mark.parametrize(
    "where",
    [{"n": 2**63}, {"a\x00b": 1}, {'n"x': 1}, {f"f{i}": i for i in range(500)}],
    ids=["int64", "nul", "quote", "500 fields"],
)
def test_the_store_turns_what_sqlite_refuses_in_a_filter_into_a_400(
    store: ItemStore, where: dict[str, Any]
) -> None:
    """The second line, for a caller that skipped check_filter: never a bare sqlite3 error.
    (SQLite parses a path lazily: `n"x` fails only because a stored item has an `n`.)"""
    with pytest.raises(InvalidRequest) as caught:
        store.matching(where)
    assert caught.value.param == "filter"


def test_a_broken_store_file_stays_a_sqlite_error(store: ItemStore, tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / STORE_FILE)) as db:
        db.execute("DROP TABLE items")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.matching({"n": 1})
