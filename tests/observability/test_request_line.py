"""The request line written straight through the JSON pipeline is the line structlog writes."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.config import LogSettings
from gateway.observability import logs


@pytest.fixture
def json_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.BytesIO]:
    """configure_logging's JSON lines, each written at once to stderr (a buffer here); structlog
    is reset after."""
    err = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stderr", err)
    logs.configure_logging(LogSettings(format="json", buffer_ms=0))
    try:
        yield err.buffer  # type: ignore[misc]
    finally:
        structlog.reset_defaults()
        logs._json_pipeline = logs._json_logger = None


def _fields() -> dict[str, Any]:
    return {"method": "POST", "route": "/v1/embeddings", "status": 200, "hits": 1, "ms": 0.25}


def test_write_event_writes_what_structlog_writes(json_logging: io.BytesIO) -> None:
    structlog.get_logger("gateway.request").info("request", **_fields())
    assert logs.write_event("info", {**_fields(), "event": "request"})
    first, second = json_logging.getvalue().decode().splitlines()
    stamp = re.compile(r'"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"')
    assert stamp.search(first) and stamp.search(second)
    assert stamp.sub("", first) == stamp.sub("", second)  # same keys, order and text
    assert list(json.loads(second)) == [*_fields(), "event", "level", "timestamp"]


@pytest.mark.parametrize("level", ["warning", "warn"])
def test_bound_context_and_renamed_levels_render_as_structlog_does(
    json_logging: io.BytesIO, level: str
) -> None:
    with structlog.contextvars.bound_contextvars(tenant="t1"):
        getattr(structlog.get_logger("gateway.request"), level)("request", **_fields())
        assert logs.write_event(level, {**_fields(), "event": "request"})
    first, second = json_logging.getvalue().decode().splitlines()
    stamp = re.compile(r'"timestamp":"[^"]+"')
    assert stamp.sub("", first) == stamp.sub("", second)
    assert json.loads(second)["tenant"] == "t1"


def test_a_capture_of_the_logs_is_respected(json_logging: io.BytesIO) -> None:
    with capture_logs():
        assert not logs.write_event("info", {"event": "request"})
    assert json_logging.getvalue() == b""


def test_the_stamp_of_a_whole_second_has_no_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    assert logs.UtcStamper()(None, "info", {})["timestamp"] == "2023-11-14T22:13:20Z"
    monkeypatch.setattr(logs.time, "time_ns", lambda: 1_700_000_000_000_042_000)
    assert logs.UtcStamper()(None, "info", {})["timestamp"] == "2023-11-14T22:13:20.000042Z"
