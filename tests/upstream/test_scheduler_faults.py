"""Upstream faults: retries that honour the upstream's delay, deadlines, bad answers, bad items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.cache.store import VectorCache
from gateway.errors import UpstreamServerError
from gateway.fake import FakeGemini
from gateway.fake.faults import MalformedKind
from gateway.upstream.outcome import Failure, Fetched
from tests.conftest import make_settings
from tests.upstream.test_scheduler import (
    FAST_UPSTREAM,
    PARAMS,
    direct_scheduler,
    fast_settings,
    keyed,
    live_gateway,
    small_vectors,
)
from tests.upstream.virtual_time import VirtualTime

MODEL = "gemini-embedding-2"
GEMINI_BATCH = f"/v1beta/models/{MODEL}:batchEmbedContents"


def gemini_body(*texts: str) -> dict[str, Any]:
    return {
        "requests": [
            {"model": f"models/{MODEL}", "content": {"parts": [{"text": t}]}} for t in texts
        ]
    }


async def test_429_twice_with_retry_info_succeeds_after_the_delays_not_before(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.fail_next(429, times=2, retry_delay="1s")
    settings = fast_settings(tmp_path)
    cache = VectorCache(settings.cache)
    time = VirtualTime()
    scheduler = direct_scheduler(settings, fake, cache, time)
    items = keyed("patience")
    (outcome,) = (await scheduler.embed(items, PARAMS, 3072)).values()
    assert isinstance(outcome, Fetched)
    assert fake.call_count == 3
    # Both RetryInfo delays were waited out in full (backoff alone would be ~0.01 s), and the
    # second call did not leave before the first delay was over.
    assert len(time.sleeps) == 2 and all(1.0 <= s <= 1.1 for s in time.sleeps)
    assert scheduler.stats()["retries"] == 2
    assert len(await cache.get_many(items)) == 1
    cache.close()


async def test_retry_after_header_is_honoured_too(tmp_path: Path, fake: FakeGemini) -> None:
    fake.fail_next(503, retry_after="7")
    time = VirtualTime()
    scheduler = direct_scheduler(fast_settings(tmp_path), fake, time=time)
    (outcome,) = (await scheduler.embed(keyed("come back later"), PARAMS, 3072)).values()
    assert isinstance(outcome, Fetched)
    assert fake.call_count == 2
    assert sum(time.sleeps) >= 7.0


async def test_a_retry_delay_beyond_the_deadline_answers_429_with_retry_after_at_once(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.fail_next(429, times=5, retry_delay="30s")
    async with live_gateway(fast_settings(tmp_path, deadline_s=2.0), fake) as gateway:
        response = await gateway.embed(model=MODEL, input="quota gone")
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.headers["retry-after"] == "30"
        assert fake.call_count == 1  # no hopeless wait, no second call
        assert gateway.cache_entries() == 0


@pytest.mark.parametrize("dialect", ["openai", "gemini"])
async def test_persistent_500_is_an_upstream_error_in_the_callers_envelope_and_nothing_is_cached(
    tmp_path: Path, fake: FakeGemini, dialect: str
) -> None:
    fake.fail_next(500, times=100)
    settings = fast_settings(tmp_path, max_retries=3, breaker_failures=100)
    async with live_gateway(settings, fake) as gateway:
        if dialect == "openai":
            response = await gateway.embed(model=MODEL, input=["p", "q"])
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
        else:
            response = await gateway.http.post(GEMINI_BATCH, json=gemini_body("p", "q"))
            error = response.json()["error"]
            assert set(error) >= {"code", "message", "status"}
            assert (error["code"], error["status"]) == (502, "UNAVAILABLE")
        assert response.status_code == 502
        assert "500" in error["message"]
        assert fake.call_count == 4  # the first try and max_retries=3 more
        assert gateway.cache_entries() == 0


async def test_the_deadline_ends_retries_with_the_upstreams_error(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.fail_next(500, times=10_000)
    settings = fast_settings(
        tmp_path,
        max_retries=10_000,
        deadline_s=2.0,
        breaker_failures=0,
        backoff_base_s=0.1,
        backoff_max_s=0.4,
    )
    time = VirtualTime()
    scheduler = direct_scheduler(settings, fake, time=time)
    (outcome,) = (await scheduler.embed(keyed("never"), PARAMS, 3072)).values()
    # the upstream's error (a 502), not a 504 from waiting the deadline out
    assert isinstance(outcome, Failure) and outcome.kind is UpstreamServerError
    assert 1 < fake.call_count < 10_000
    assert sum(time.sleeps) <= 2.0  # no sleep past the deadline


@pytest.mark.parametrize("kind", ["not_json", "nan", "short_vector", "wrong_count", "zero_vector"])
async def test_a_malformed_answer_is_an_error_and_nothing_is_stored(
    tmp_path: Path, fake: FakeGemini, kind: MalformedKind
) -> None:
    fake.malformed_next(kind)
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        response = await gateway.embed(model=MODEL, input=["m1", "m2", "m3"])
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_error"
        assert gateway.cache_entries() == 0
        assert fake.call_count == 1  # a broken answer is not retried blindly
        again = await gateway.embed(model=MODEL, input=["m1", "m2", "m3"])
        assert again.status_code == 200
        assert gateway.cache_entries() == 3


async def test_one_poisoned_item_in_250_fails_alone_and_the_other_249_are_cached(
    tmp_path: Path, fake: FakeGemini
) -> None:
    texts = [f"item {i}" for i in range(250)]
    fake.poison(lambda item: item.parts[0].text == "item 137")
    async with live_gateway(small_vectors(fast_settings(tmp_path)), fake) as gateway:
        response = await gateway.embed(model=MODEL, input=texts)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "upstream_rejected_input"
        assert error["param"] == "input[137]"
        assert "input[137]" in error["message"]
        assert "input[136]" not in error["message"]
        assert response.headers["x-should-retry"] == "false"
        assert gateway.cache_entries() == 249
        assert fake.call_count - 3 <= 16  # three batches, then the bisection
        assert gateway.scheduler.stats()["bisect_calls"] == fake.call_count - 3

        # The same request again: the 249 come from the cache, only the bad one goes out.
        received = fake.items_received
        calls = fake.call_count
        retry = await gateway.embed(model=MODEL, input=texts)
        assert retry.status_code == 400
        assert retry.json()["error"]["param"] == "input[137]"
        assert fake.call_count == calls + 1
        assert fake.items_received == received  # a rejected call embeds nothing
        assert fake.calls[-1].items is not None and len(fake.calls[-1].items) == 1

        without = await gateway.embed(model=MODEL, input=texts[:137] + texts[138:])
        assert without.status_code == 200
        assert without.headers["x-cache"] == "HIT"


async def test_the_gemini_dialect_names_the_rejected_request_too(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.poison(lambda item: item.parts[0].text == "bad")
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        response = await gateway.http.post(GEMINI_BATCH, json=gemini_body("ok 0", "ok 1", "bad"))
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        assert "2" in error["message"]
        assert gateway.cache_entries() == 2


async def test_the_gateways_own_request_limit_answers_429_instead_of_calling(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, requests_per_minute=1, deadline_s=1.0)
    async with live_gateway(settings, fake) as gateway:
        first = await gateway.embed(model=MODEL, input="one call a minute")
        assert first.status_code == 200
        second = await gateway.embed(model=MODEL, input="a second call")
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "rate_limit_exceeded"
        assert 50 <= int(second.headers["retry-after"]) <= 60
        assert fake.call_count == 1
        hit = await gateway.embed(model=MODEL, input="one call a minute")
        assert hit.status_code == 200  # hits never wait for the upstream's budget


async def test_the_gateways_own_token_limit_shapes_by_estimated_tokens(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = fast_settings(tmp_path, tokens_per_minute=100, deadline_s=1.0)
    async with live_gateway(settings, fake) as gateway:
        small = await gateway.embed(model=MODEL, input="x" * 40)  # about 10 tokens
        assert small.status_code == 200
        big = await gateway.embed(model=MODEL, input="y" * 400)  # about 100 tokens
        assert big.status_code == 429
        assert fake.call_count == 1


async def test_a_batch_rejected_whole_costs_a_bounded_number_of_calls(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.poison(lambda item: True)  # e.g. a model that refuses every item of this kind
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        response = await gateway.embed(model=MODEL, input=[f"r{i}" for i in range(100)])
        assert response.status_code == 400
        assert "input[0]" in response.json()["error"]["message"]
        assert "input[99]" in response.json()["error"]["message"]
        assert fake.call_count <= 1 + 32  # not the 199 calls a full bisection would take
        assert gateway.cache_entries() == 0


async def test_a_refused_api_key_is_not_bisected_nor_retried(
    tmp_path: Path, fake: FakeGemini
) -> None:
    fake.valid_keys = {"some-other-key"}  # Google answers 400 API_KEY_INVALID
    async with live_gateway(fast_settings(tmp_path), fake) as gateway:
        response = await gateway.embed(model=MODEL, input=["k1", "k2", "k3"])
        assert response.status_code == 502
        assert "API key" in response.json()["error"]["message"]
        assert fake.call_count == 1


async def test_worker_processes_split_the_accounts_request_budget(
    tmp_path: Path, fake: FakeGemini
) -> None:
    settings = make_settings(
        tmp_path / "cache",
        server={"workers": 2},
        upstream={**FAST_UPSTREAM, "requests_per_minute": 2, "deadline_s": 1.0},
    )
    async with live_gateway(settings, fake) as gateway:  # one of the two processes
        assert (await gateway.embed(model=MODEL, input="mine")).status_code == 200
        assert (await gateway.embed(model=MODEL, input="the other's")).status_code == 429
        assert fake.call_count == 1
