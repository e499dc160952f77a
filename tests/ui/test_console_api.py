"""The console's routes in-process: its files under a strict CSP, the JSON it reads, and auth."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.api.ui import routes
from gateway.api.ui.routes import STATE_KEY
from gateway.fake import FakeGemini
from gateway.observability.timeline import Timeline
from tests.conftest import Gateway, make_app, make_settings
from tests.ui.samples import NEAR_TEXT, NEAR_VARIANT

GE2 = "gemini-embedding-2"
KEY = "sk-console-key"


async def test_the_page_and_its_files_come_from_the_package_under_a_csp_without_inline_script(
    gateway: Gateway,
) -> None:
    page = await gateway.http.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert "<script>" not in html  # every script is a file from this origin
    assert "http://" not in html
    assert "https://" not in html
    types = {
        "console.js": "text/javascript",
        "console.css": "text/css",
        "icon.svg": "image/svg+xml",
    }
    for name, kind in types.items():
        asset = await gateway.http.get(f"/ui/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(kind)
        assert "http://" not in asset.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in asset.text
    assert (await gateway.http.get("/ui/index.html")).status_code == 404
    assert (await gateway.http.get("/ui/../app.py")).status_code == 404


async def test_stats_move_as_requests_flow_and_the_consoles_own_calls_are_not_counted(
    gateway: Gateway,
) -> None:
    stats_reply = await gateway.http.get("/ui/api/stats")
    before = stats_reply.json()
    assert before["object"] == "console.stats"
    assert before["pid"] == os.getpid()  # in-process here; with workers, the one that answered
    assert stats_reply.headers["cache-control"] == "no-store"
    assert before["requests"] == 0
    assert before["lookups"] == {}
    assert before["reuses"] == {}
    assert before["upstream"] == {
        "mode": "online",
        "breaker": "closed",
        "calls": 0,
        "items": 0,
        "tokens": 0,
        "errors": 0,
        "fast_failures": 0,
    }
    assert {m["id"] for m in before["models"]} >= {GE2}
    assert before["dtypes"] == ["float", "int8", "uint8", "binary", "ubinary"]
    assert before["pricing"]["text"] == 0.20
    for _ in range(2):
        assert (await gateway.embed(model=GE2, input="the console counts this")).status_code == 200
    await gateway.http.get("/ui/api/requests")
    after = (await gateway.http.get("/ui/api/stats")).json()
    assert after["requests"] == 2  # two embeddings; the console's stats and tail calls aside
    assert after["lookups"] == {"miss": 1.0, "hit": 1.0}
    assert after["saved_dollars"]["text"] > 0
    assert after["saved_tokens"]["text"] > 0
    assert after["upstream"]["items"] == 1
    assert after["cache"]["entries"] == 1
    assert after["cache"]["size_limit_bytes"] == 10 * 1024**3
    assert after["hit_latency"]["p50_ms"] is not None


async def test_the_request_tail_has_the_log_lines_figures_and_never_the_payload(
    gateway: Gateway,
) -> None:
    secret = "a private sentence nobody may read back"
    reply = await gateway.embed(model=GE2, input=[secret, "two"])
    await gateway.http.get("/v1/models?key=sk-in-a-query")
    tail = await gateway.http.get("/ui/api/requests", params={"limit": "10"})
    assert tail.status_code == 200
    lines = tail.json()["data"]
    assert [line["route"] for line in lines] == ["/v1/embeddings", "/v1/models"]
    first = lines[0]
    assert first["request_id"] == reply.headers["x-request-id"]
    assert (first["status"], first["inputs"], first["misses"], first["model"]) == (200, 2, 2, GE2)
    assert secret not in tail.text
    assert "sk-in-a-query" not in tail.text
    assert (await gateway.http.get("/ui/api/requests", params={"limit": "1"})).json()["data"][0][
        "route"
    ] == "/v1/models"


@pytest.mark.parametrize("limit", ["0", "x", "-1", "10001"])
async def test_a_bad_tail_limit_is_a_400_naming_it(gateway: Gateway, limit: str) -> None:
    reply = await gateway.http.get("/ui/api/requests", params={"limit": limit})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "limit"


@pytest.fixture
async def keyed(tmp_path: Path, fake: FakeGemini) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = make_app(make_settings(tmp_path / "cache"), fake, client_keys=frozenset({KEY}))
    async with AsyncTestClient(app) as client:
        yield client


async def test_with_client_keys_only_the_page_loads_without_a_key(
    keyed: AsyncTestClient[Litestar],
) -> None:
    for path in ("/ui", "/ui/console.js", "/ui/console.css", "/ui/icon.svg"):
        assert (await keyed.get(path)).status_code == 200, path
    for path in ("/ui/api/stats", "/ui/api/requests", "/ui/other", "/v1/collections"):
        reply = await keyed.get(path)
        assert reply.status_code == 401, path
        assert reply.json()["error"]["code"] == "invalid_api_key"
    bad = await keyed.get("/ui/api/stats", headers={"authorization": "Bearer wrong"})
    assert bad.status_code == 401
    good = await keyed.get("/ui/api/stats", headers={"authorization": f"Bearer {KEY}"})
    assert good.status_code == 200
    assert good.json()["object"] == "console.stats"


async def test_ui_off_serves_no_console_and_keeps_nothing_for_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    app = make_app(make_settings(tmp_path / "cache", ui={"enabled": False}), fake)
    async with AsyncTestClient(app) as client:
        for path in ("/ui", "/ui/console.js", "/ui/api/stats"):
            assert (await client.get(path)).status_code == 404, path
    assert app.state["services"].metrics.on_request == []


async def test_the_stats_endpoints_are_in_the_openapi_document(gateway: Gateway) -> None:
    doc = (await gateway.http.get("/schema/openapi.json")).json()
    stats = doc["paths"]["/ui/api/stats"]["get"]
    assert stats["operationId"] == "consoleStats"
    assert stats["tags"] == ["Console"]
    assert "/ui/api/requests" in doc["paths"]
    assert "/ui" not in doc["paths"]


async def test_a_shared_tier_shows_its_state_and_counts_and_none_is_null(gateway: Gateway) -> None:
    assert (await gateway.http.get("/ui/api/stats")).json()["shared"] is None
    cache = gateway.http.app.state["services"].cache  # type: ignore[attr-defined]

    class Tier:  # what a tiered cache's SharedTier exposes
        state = "cooling"
        hits, misses, errors, skipped, dropped_writes = 5, 2, 3, 7, 1
        last_error = "ConnectionError: refused"

    cache.shared = Tier()
    try:
        shared = (await gateway.http.get("/ui/api/stats")).json()["shared"]
    finally:
        del cache.shared
    assert shared == {
        "state": "cooling",
        "hits": 5,
        "misses": 2,
        "errors": 3,
        "skipped": 7,
        "dropped_writes": 1,
        "last_error": "ConnectionError: refused",
    }


async def test_near_duplicate_reuses_are_counted_by_stage_among_the_hits(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(tmp_path / "cache", near_duplicates={"text": True})
    async with AsyncTestClient(make_app(settings, fake)) as client:
        for body in (NEAR_TEXT, NEAR_VARIANT):
            reply = await client.post("/v1/embeddings", json={"model": GE2, "input": body})
            assert reply.status_code == 200
        assert reply.headers["x-cache-near"] == "1/1"
        stats = (await client.get("/ui/api/stats")).json()
    assert stats["lookups"] == {"miss": 1.0, "hit": 1.0}
    assert stats["reuses"] == {"near": 1.0}


async def test_an_open_breaker_and_upstream_errors_show_in_the_stats(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(tmp_path / "cache", upstream={"breaker_failures": 1, "max_retries": 0})
    async with AsyncTestClient(make_app(settings, fake)) as client:
        fake.fail_next(500, times=5)
        failed = await client.post("/v1/embeddings", json={"model": GE2, "input": "down"})
        assert failed.status_code >= 500
        stats = (await client.get("/ui/api/stats")).json()
    assert stats["upstream"]["breaker"] == "open"
    assert stats["upstream"]["errors"] >= 1
    assert stats["errors"] == 1  # the 5xx the caller got


async def test_the_last_hour_comes_as_points_of_what_each_step_saw(
    tmp_path: Path, fake: FakeGemini
) -> None:
    app = make_app(make_settings(tmp_path / "cache"), fake)
    services = app.state["services"]
    now = [5000.0]
    timeline = Timeline(services.metrics, lambda: 0, clock=lambda: now[0], wall=lambda: now[0])
    services.metrics.on_request[:] = [timeline.request_done]
    app.state[STATE_KEY] = timeline
    async with AsyncTestClient(app) as client:
        for _ in range(3):
            await client.post("/v1/embeddings", json={"model": GE2, "input": "a point"})
        now[0] += 10.0
        # The first request to finish after the step's end closes it, and counts in it: its
        # lookups are in the counters the step is read from.
        await client.post("/v1/embeddings", json={"model": GE2, "input": "a point"})
        await client.post("/v1/embeddings", json={"model": GE2, "input": "another"})
        now[0] += 10.0
        series = (await client.get("/ui/api/stats")).json()["series"]
    first, second = series
    assert (first["t"], first["seconds"], first["requests"]) == (5010.0, 10.0, 4)
    assert first["lookups"] == {"miss": 1.0, "hit": 3.0}
    assert first["upstream_items"] == 1
    assert first["saved_dollars"]["text"] > 0
    assert first["hit_p50_ms"] is not None
    assert (second["t"], second["requests"], second["lookups"]) == (5020.0, 1, {"miss": 1.0})
    assert second["upstream_items"] == 1


async def test_the_timeline_is_read_on_the_event_loop_where_requests_write_it(
    gateway: Gateway,
) -> None:
    """The ring is not locked: a reader in a worker thread could iterate it while a request
    appends a step ('deque mutated during iteration') or close the same step twice."""
    timeline = gateway.http.app.state[STATE_KEY]  # type: ignore[attr-defined]
    on_loop: list[bool] = []
    series = timeline.series

    def recording() -> Any:
        try:
            asyncio.get_running_loop()  # only the loop's own thread has one
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return series()

    timeline.series = recording
    assert (await gateway.http.get("/ui/api/stats")).status_code == 200
    assert on_loop == [True]


def test_the_page_weighs_under_200_kb_and_ships_only_what_it_serves() -> None:
    static = Path(routes.__file__).with_name("static")
    shipped = {p.name: p.stat().st_size for p in static.iterdir()}
    assert set(shipped) == set(routes.ASSETS)  # nothing unserved, nothing missing
    assert sum(shipped.values()) < 200 * 1024  # the goal, all assets uncompressed
    html = (static / "index.html").read_text()
    assert set(re.findall(r'(?:src|href)="(/[^"]*)"', html)) == {
        "/ui/icon.svg",
        "/ui/console.css",
        "/ui/console.js",
    }
