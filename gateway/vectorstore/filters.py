"""Search filters: equality on top-level metadata fields, bounded before any of it reaches SQLite.

Each field becomes a JSON path (`$."field"`) and a few host parameters in the store's query, so
an unbounded filter is a way to make SQLite fail: an integer past int64 overflows its binding, a
`"` or a NUL breaks the path, and a few hundred fields pass its expression-depth limit. Every such
filter is a 400 naming `filter` (or `filter.<field>`) here, before a thread or the store is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidRequest

MAX_FIELDS = 64
MAX_FIELD_CHARS = 128
# Stored metadata is at most 64 KiB of JSON, so no stored string is longer than this.
MAX_VALUE_CHARS = 64 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Scalar = str | int | float | bool | None


def check_filter(where: Mapping[str, Any] | None) -> dict[str, Scalar] | None:
    """The filter if SQLite can run it as asked, else a 400 naming the bad part."""
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidRequest("`filter` must be an object of field: value", param="filter")
    if len(where) > MAX_FIELDS:
        raise InvalidRequest(
            f"`filter` has {len(where)} fields; at most {MAX_FIELDS} are allowed", param="filter"
        )
    return {_check_field(field): _check_value(field, value) for field, value in where.items()}


def _check_field(field: Any) -> str:
    if (
        not isinstance(field, str)
        or not 1 <= len(field) <= MAX_FIELD_CHARS
        or not field.isprintable()
        or '"' in field
        or "\\" in field
    ):
        shown = repr(field)[:40]
        raise InvalidRequest(
            f"`filter` field names must be 1-{MAX_FIELD_CHARS} printable characters "
            f'without `"` or `\\`; got {shown}',
            param="filter",
        )
    return field


def _check_value(field: str, value: Any) -> Scalar:
    param = f"filter.{field}"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidRequest(f"`{param}` is outside the 64-bit integer range", param=param)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"`{param}` must be a finite number", param=param)
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidRequest(
                f"`{param}` is over {MAX_VALUE_CHARS} characters; no stored metadata holds it",
                param=param,
            )
        return value
    if isinstance(value, list | tuple):
        kind = "lists (`in`)"
    elif isinstance(value, Mapping):
        kind = "nested objects"
    else:
        kind = type(value).__name__
    raise InvalidRequest(
        f"`{param}` must be a string, number, boolean or null (equality); {kind} not supported",
        param=param,
    )
