"""/metrics moves as requests flow: scrape, act, scrape. And the canonical request log line."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from gateway.fake import FakeGemini
from tests.conftest import Gateway, make_app, make_settings

GE2 = "gemini-embedding-2"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    reply = await http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every label set that includes `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_hits_misses_upstream_and_savings_move_as_requests_flow(gateway: Gateway) -> None:
    http = gateway.http
    before = await scrape(http)
    first = await gateway.embed(model=GE2, input=["alpha beta gamma", "delta"])
    assert first.status_code == 200
    after_miss = await scrape(http)
    lookups = "gateway_cache_lookups_total"
    assert delta(after_miss, before, lookups, model=GE2, modality="text", result="miss") == 2
    assert delta(after_miss, before, lookups, result="hit") == 0
    assert delta(after_miss, before, "gateway_upstream_items_total") == 2
    assert delta(after_miss, before, "gateway_upstream_calls_total") >= 1
    assert delta(after_miss, before, "gateway_upstream_tokens_total") > 0
    assert total(after_miss, "gateway_cache_entries") == 2
    assert total(after_miss, "gateway_cache_bytes") > 2 * 3072 * 4
    requests = {"route": "/v1/embeddings", "method": "POST", "status": "200"}
    assert delta(after_miss, before, "gateway_requests_total", **requests) == 1
    assert delta(after_miss, before, "gateway_request_duration_seconds_count") >= 1

    second = await gateway.embed(model=GE2, input=["alpha beta gamma", "delta"])
    after_hit = await scrape(http)
    tokens = second.json()["usage"]["total_tokens"]
    assert delta(after_hit, after_miss, lookups, model=GE2, modality="text", result="hit") == 2
    assert delta(after_hit, after_miss, "gateway_upstream_items_total") == 0
    assert delta(after_hit, after_miss, "gateway_saved_tokens_total", modality="text") == tokens
    saved = delta(after_hit, after_miss, "gateway_saved_dollars_total", model=GE2)
    assert saved == pytest.approx(tokens * 0.20 / 1e6)

    await gateway.embed(model="no-such-model", input="x")
    after_404 = await scrape(http)
    assert delta(after_404, after_hit, "gateway_requests_total", status="404") == 1


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


async def test_savings_use_each_modality_price_and_the_config_overrides_it(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(tmp_path / "c", pricing={"image": 2.0, "text": 1.0})
    body = {"content": {"parts": [{"inline_data": {"mime_type": "image/png", "data": ""}}]}}
    body["content"]["parts"][0]["inline_data"]["data"] = base64.b64encode(png()).decode()
    path = f"/v1beta/models/{GE2}:embedContent"
    async with AsyncTestClient(make_app(settings, fake)) as http:
        assert (await http.post(path, json=body)).status_code == 200
        before = await scrape(http)
        assert (await http.post(path, json=body)).status_code == 200
        after = await scrape(http)
    saved_tokens = delta(after, before, "gateway_saved_tokens_total", modality="image")
    assert saved_tokens == 258  # Google bills an image as 258 tokens
    dollars = delta(after, before, "gateway_saved_dollars_total", modality="image")
    assert dollars == pytest.approx(258 * 2.0 / 1e6)
    assert delta(after, before, "gateway_cache_lookups_total", modality="image", result="hit") == 1


async def test_each_app_has_its_own_registry(tmp_path: Path, fake: FakeGemini) -> None:
    one = make_app(make_settings(tmp_path / "one"), fake)
    two = make_app(make_settings(tmp_path / "two"), fake)
    async with AsyncTestClient(one) as a, AsyncTestClient(two) as b:
        await a.post("/v1/embeddings", json={"model": GE2, "input": "only in one"})
        assert total(await scrape(a), "gateway_cache_lookups_total") == 1
        assert total(await scrape(b), "gateway_cache_lookups_total") == 0


async def test_concurrent_identical_misses_count_as_coalesced_waits(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.latency_s = 0.3
    app = make_app(make_settings(tmp_path / "c"), fake)
    # litestar's test client runs one request at a time; httpx's ASGI transport does not.
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        before = await scrape(http)
        body = {"model": GE2, "input": "same words"}
        with capture_logs() as logs:
            replies = await asyncio.gather(
                *(http.post("/v1/embeddings", json=body) for _ in range(3))
            )
        after = await scrape(http)
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert fake.items_received == 1
    assert delta(after, before, "gateway_coalesced_total") == 2
    lines = [e for e in logs if e["event"] == "request"]
    assert sorted(e["coalesced"] for e in lines) == [0, 1, 1]
    assert all(e["upstream_ms"] > 0 for e in lines)


async def test_upstream_errors_and_the_breaker_state_show(tmp_path: Path, fake: FakeGemini) -> None:
    settings = make_settings(
        tmp_path / "c", upstream={"max_retries": 0, "breaker_failures": 1, "breaker_cooldown_s": 60}
    )
    async with AsyncTestClient(make_app(settings, fake)) as http:
        fake.fail_next(500, times=5)
        failed = await http.post("/v1/embeddings", json={"model": GE2, "input": "down"})
        assert failed.status_code >= 500
        samples = await scrape(http)
    assert total(samples, "gateway_upstream_errors_total") >= 1
    assert total(samples, "gateway_upstream_call_duration_seconds_count") >= 1
    assert total(samples, "gateway_upstream_breaker_state", state="open") == 1
    assert total(samples, "gateway_upstream_breaker_state", state="closed") == 0
    assert total(samples, "gateway_upstream_breaker_opened_total") == 1


async def test_a_bounded_cache_reports_its_evictions(tmp_path: Path, fake: FakeGemini) -> None:
    limit = 256 * 1024
    settings = make_settings(tmp_path / "c", cache={"size_limit_bytes": limit, "memory_bytes": 0})
    async with AsyncTestClient(make_app(settings, fake)) as http:
        for batch in range(10):
            words = [f"batch {batch} item {i}" for i in range(20)]
            assert (
                await http.post("/v1/embeddings", json={"model": GE2, "input": words})
            ).is_success
        samples = await scrape(http)
    assert total(samples, "gateway_cache_size_limit_bytes") == limit
    assert total(samples, "gateway_cache_bytes") <= limit
    assert total(samples, "gateway_cache_evictions_total") == 200 - total(
        samples, "gateway_cache_entries"
    )


async def test_one_canonical_log_line_per_request_and_no_payload_in_it(gateway: Gateway) -> None:
    with capture_logs() as logs:
        reply = await gateway.embed(model=GE2, input=["secret words", "more secret words"])
        again = await gateway.embed(model=GE2, input="secret words")
    lines: list[dict[str, Any]] = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 2
    first, second = lines
    assert first["request_id"] == reply.headers["x-request-id"]
    assert second["request_id"] == again.headers["x-request-id"]
    for field in ("route", "model", "inputs", "hits", "misses", "coalesced", "upstream_ms"):
        assert field in first, field
    assert first["total_ms"] > 0 and first["status"] == 200
    assert (first["inputs"], first["hits"], first["misses"]) == (2, 0, 2)
    assert (second["inputs"], second["hits"], second["misses"]) == (1, 1, 0)
    assert second["upstream_ms"] == 0
    assert "secret" not in repr(logs)
